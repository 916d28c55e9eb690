"""FaceAnalyzer: decode -> resize -> detect -> attributes -> align -> embed, for one job's images.

Many jobs run at once on a worker's threads. Their model calls meet in two micro-batchers
(detection, embedding), so faces of several jobs share one network call, and one device lock
keeps model calls from competing for the same cores or GPU.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np
from numpy.typing import NDArray

from shared.errors import FaceRestError, ModelNotLoaded
from shared.schemas import AnalysisOptions, ErrorRecord, FaceRecord, ImageRecord
from worker.batching import MicroBatcher
from worker.imaging.align import warp_to_template
from worker.imaging.decode import DecodedImage, RGBImage, ScaleRule, decode_image
from worker.imaging.resize import fit_scale, letterbox
from worker.inference.registry import ModelSpec
from worker.models.base import (
    Detections,
    Detector,
    GenderAge,
    GenderAgeModel,
    LandmarkModel,
    Recognizer,
)


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How much work one model call may gather across jobs, and how long it may wait for it."""

    max_images: int = 8
    max_faces: int = 32
    max_wait_s: float = 0.002
    # Give each network one input shape: canvases fill max_size, face batches are padded to
    # max_faces. On a GPU every new shape costs ONNX Runtime's cuDNN about a second.
    static_shapes: bool = False


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


@dataclass(frozen=True, slots=True)
class AttributeModels:
    """The optional per-face models a worker loaded; None where not loaded."""

    landmarks: LandmarkModel | None = None
    genderage: GenderAgeModel | None = None

    def names(self) -> list[str]:
        return [
            name for name, model in (("genderage", self.genderage), ("landmarks106", self.landmarks)) if model
        ]


@dataclass(slots=True)
class _Pending:
    """One image on its way through the pipeline."""

    record: ImageRecord
    detections: Detections = field(default_factory=Detections.empty)
    crops: list[NDArray[np.uint8]] = field(default_factory=list)
    genderage: GenderAge | None = None
    landmarks106: NDArray[np.float32] | None = None


def select_faces(found: Detections, options: AnalysisOptions) -> NDArray[np.intp]:
    """Indices of the faces to keep: min_face_size, then the ``limit_faces`` largest, in
    descending score order. ``found`` is in full-size image pixels."""
    widths = found.boxes[:, 2] - found.boxes[:, 0]
    heights = found.boxes[:, 3] - found.boxes[:, 1]
    keep = np.flatnonzero((widths >= options.min_face_size) & (heights >= options.min_face_size))
    if len(keep) > options.limit_faces:
        areas = widths[keep] * heights[keep]
        keep = np.sort(keep[np.argsort(-areas, kind="stable")[: options.limit_faces]])
    return keep


# The smallest faces SCRFD finds span about this many pixels of its input canvas.
SMALLEST_DETECTED_FACE = 16


def decode_scale(options: AnalysisOptions, recognizer_input: int) -> ScaleRule:
    """How small an image may decode without any face we could return losing pixels the
    recognizer needs: the smallest such face (the detector's limit at ``max_size``, or
    ``min_face_size``) must still span the recognizer's input (112 px) in the decoded pixels."""

    def min_scale(width: int, height: int) -> float:
        if options.embed_only:
            return 1.0
        smallest = SMALLEST_DETECTED_FACE / fit_scale(width, height, options.max_size)
        return min(1.0, recognizer_input / max(smallest, options.min_face_size))

    return min_scale


def _error(exc: FaceRestError, start: float) -> ImageRecord:
    return {
        "status": "error",
        "error": {"code": exc.code, "message": exc.message},
        "took_ms": _ms_since(start),
    }


def _encode_jpeg(crop: NDArray[np.uint8]) -> bytes:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return encoded.tobytes() if ok else b""


def _points(points: NDArray[np.float32]) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in points]


class FaceAnalyzer:
    """Holds the loaded models; every per-request choice comes in as an argument.

    ``detectors`` maps request names ("scrfd", ...) to detectors; the first is the default.
    """

    def __init__(
        self,
        detectors: Mapping[str, Detector] | Detector,
        recognizer: Recognizer,
        max_pixels: int,
        attributes: AttributeModels | None = None,
        limits: BatchLimits | None = None,
    ) -> None:
        if not isinstance(detectors, Mapping):
            detectors = {detectors.spec.key: detectors}
        if not detectors:
            raise ValueError("FaceAnalyzer needs at least one detector")
        self.detectors: dict[str, Detector] = dict(detectors)
        self.detector = next(iter(self.detectors.values()))
        self.recognizer = recognizer
        self.attributes = attributes or AttributeModels()
        self._max_pixels = max_pixels
        self._limits = limits or BatchLimits()
        # One model call at a time per device: on a CPU each call already uses every core.
        self._device_lock = threading.Lock()
        # Jobs inside analyze(): a batch need not wait for more callers than there are.
        self._active_jobs = 0
        self._active_lock = threading.Lock()
        self._detect_batchers: dict[str, MicroBatcher[tuple[NDArray[np.uint8], float], Detections]] = {
            name: MicroBatcher(
                partial(self._detect_many, detector),
                self._limits.max_images,
                self._limits.max_wait_s,
                f"detect-{name}",
                self._active,
            )
            for name, detector in self.detectors.items()
        }
        self._embed_batcher: MicroBatcher[NDArray[np.uint8], NDArray[np.float32]] = MicroBatcher(
            self._embed_many, self._limits.max_faces, self._limits.max_wait_s, "embed", self._active
        )

    def _active(self) -> int:
        return self._active_jobs

    def close(self) -> None:
        for batcher in self._detect_batchers.values():
            batcher.close()
        self._embed_batcher.close()

    def _detector_name(self, options: AnalysisOptions) -> str:
        if options.detector is None:
            return next(iter(self.detectors))
        if options.detector not in self.detectors:
            available = list(self.detectors)
            raise ModelNotLoaded(
                f"detector {options.detector!r} is not loaded on this worker; "
                f"available: {', '.join(available)}",
                available,
            )
        return options.detector

    def detector_for(self, options: AnalysisOptions) -> Detector:
        return self.detectors[self._detector_name(options)]

    def check_attributes(self, options: AnalysisOptions) -> None:
        _, wanted = options.required_models()
        loaded = self.attributes.names()
        missing = [name for name in wanted if name not in loaded]
        if missing:
            raise ModelNotLoaded(
                f"{', '.join(missing)} not loaded on this worker; loaded attribute models: "
                f"{', '.join(loaded) or 'none'}",
                loaded,
            )

    def models_for(self, options: AnalysisOptions) -> tuple[ModelSpec, ModelSpec]:
        """The detector and recognizer specs that answer a job with these options."""
        return self.detector_for(options).spec, self.recognizer.spec

    def _detect_many(
        self, detector: Detector, items: list[tuple[NDArray[np.uint8], float]]
    ) -> list[Detections]:
        """Detect in canvases of several jobs: one network call per canvas size."""
        results: list[Detections | None] = [None] * len(items)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, (canvas, _) in enumerate(items):
            by_shape.setdefault(canvas.shape, []).append(index)
        # With static shapes the detector keeps batch 1: SCRFD gains nothing from larger
        # batches even on a GPU (bench/gpu.py), and one batch size means one input shape.
        step = 1 if self._limits.static_shapes else self._limits.max_images
        for indices in by_shape.values():
            for begin in range(0, len(indices), step):
                chunk = indices[begin : begin + step]
                with self._device_lock:
                    found = detector.detect_batch([items[i][0] for i in chunk], [items[i][1] for i in chunk])
                for index, detections in zip(chunk, found, strict=True):
                    results[index] = detections
        return [r if r is not None else Detections.empty() for r in results]

    def _embed_many(self, crops: list[NDArray[np.uint8]]) -> list[NDArray[np.float32]]:
        vectors: list[NDArray[np.float32]] = []
        size = self._limits.max_faces
        for begin in range(0, len(crops), size):
            chunk = crops[begin : begin + size]
            batch = np.stack(chunk)
            if self._limits.static_shapes and len(chunk) < size:
                batch = np.concatenate([batch, np.zeros((size - len(chunk), *batch.shape[1:]), np.uint8)])
            with self._device_lock:
                vectors.extend(self.recognizer.embed(batch)[: len(chunk)])
        return vectors

    def analyze(
        self,
        images: Sequence[bytes | None],
        options: AnalysisOptions,
        known_errors: dict[int, ErrorRecord] | None = None,
    ) -> list[ImageRecord]:
        """One record per input image, in order; a bad image fails alone.

        Raises ModelNotLoaded (for the whole job) when the options need a model not loaded here.
        """
        self.detector_for(options)
        self.check_attributes(options)
        with self._active_lock:
            self._active_jobs += 1
        try:
            return self._analyze(images, options, known_errors or {})
        finally:
            with self._active_lock:
                self._active_jobs -= 1

    def _analyze(
        self, images: Sequence[bytes | None], options: AnalysisOptions, known_errors: dict[int, ErrorRecord]
    ) -> list[ImageRecord]:
        pending: list[_Pending] = []
        for index, data in enumerate(images):
            start = time.perf_counter()
            if data is None or index in known_errors:
                error = known_errors.get(index, {"code": "invalid_image", "message": "no data"})
                pending.append(_Pending({"status": "error", "error": error, "took_ms": 0.0}))
                continue
            try:
                pending.append(self._prepare(data, options, start))
            except FaceRestError as exc:
                pending.append(_Pending(_error(exc, start)))
        self._embed(pending, options)
        return [item.record for item in pending]

    def _prepare(self, data: bytes, options: AnalysisOptions, start: float) -> _Pending:
        decoded = decode_image(data, self._max_pixels, decode_scale(options, self.recognizer.input_size))
        timings = {"decode_ms": _ms_since(start)}
        record: ImageRecord = {"status": "ok", "size": [decoded.width, decoded.height], "took_ms": 0.0}
        if options.embed_only:
            found = Detections(
                np.array([[0, 0, decoded.width, decoded.height]], np.float32),
                np.ones(1, np.float32),
                np.zeros((1, 5, 2), np.float32),
            )
            item = _Pending(record, found, [self._as_crop(decoded.pixels)])
        else:
            item = self._detect(decoded, options, record, timings)
        record["took_ms"] = _ms_since(start)
        if options.verbose_timings:
            record["timings"] = timings
        return item

    def _as_crop(self, image: RGBImage) -> NDArray[np.uint8]:
        size = self.recognizer.input_size
        if image.shape[:2] == (size, size):
            return image
        return np.asarray(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), np.uint8)

    def _detect(
        self, decoded: DecodedImage, options: AnalysisOptions, record: ImageRecord, timings: dict[str, float]
    ) -> _Pending:
        """Detect, then run the per-face models on the decoded pixels; the face records get
        full-size image coordinates."""
        batcher = self._detect_batchers[self._detector_name(options)]
        step = time.perf_counter()
        image = decoded.pixels
        boxed = letterbox(image, options.max_size, fill_max_size=self._limits.static_shapes)
        (found,) = batcher.submit([(boxed.canvas, options.threshold)])
        found = found.scaled(1.0 / boxed.scale)
        full_size = found.scaled(1.0 / decoded.scale) if decoded.scale != 1.0 else found
        keep = select_faces(full_size, options)
        found = found.take(keep)
        timings["detect_ms"] = _ms_since(step)
        item = _Pending(record, full_size.take(keep))
        if options.extract_ga or options.return_landmarks106:
            step = time.perf_counter()
            item.genderage = self._gender_age(image, found, options)
            landmarks = self._landmarks106(image, found, options)
            item.landmarks106 = None if landmarks is None else landmarks / decoded.scale
            timings["attributes_ms"] = _ms_since(step)
        step = time.perf_counter()
        if options.extract_embedding or options.return_face_data:
            size, template = self.recognizer.input_size, self.recognizer.template
            item.crops = [warp_to_template(image, points, template, size) for points in found.keypoints]
        timings["align_ms"] = _ms_since(step)
        return item

    def _gender_age(self, image: RGBImage, found: Detections, options: AnalysisOptions) -> GenderAge | None:
        model = self.attributes.genderage
        if not options.extract_ga or model is None:
            return None
        with self._device_lock:
            return model.predict(image, found.keypoints)

    def _landmarks106(
        self, image: RGBImage, found: Detections, options: AnalysisOptions
    ) -> NDArray[np.float32] | None:
        model = self.attributes.landmarks
        if not options.return_landmarks106 or model is None:
            return None
        with self._device_lock:
            return model.landmarks(image, found.boxes)

    @staticmethod
    def _add_attributes(face: FaceRecord, item: _Pending, index: int) -> None:
        if item.genderage is not None:
            male = float(item.genderage.male[index])
            face["gender"] = "male" if male >= 0.5 else "female"
            face["gender_score"] = round(max(male, 1.0 - male), 4)
            face["age"] = round(float(item.genderage.age[index]), 1)
        if item.landmarks106 is not None:
            face["landmarks106"] = _points(item.landmarks106[index])

    def _embed(self, pending: list[_Pending], options: AnalysisOptions) -> None:
        """Embed the faces of all images of the job, then build the face records."""
        crops = [crop for item in pending for crop in item.crops]
        vectors: list[NDArray[np.float32]] = []
        per_face_ms = 0.0
        if options.extract_embedding and crops:
            step = time.perf_counter()
            vectors = self._embed_batcher.submit(crops)
            per_face_ms = _ms_since(step) / len(crops)
        offset = 0
        for item in pending:
            if item.record["status"] != "ok":
                continue
            count = len(item.detections)
            faces = [self._face(item, i, options) for i in range(count)]
            if options.extract_embedding:
                for face, raw in zip(faces, vectors[offset : offset + count], strict=True):
                    norm = float(np.linalg.norm(raw))
                    face["vec"] = (raw / max(norm, 1e-12)).astype(np.float32).tobytes()
                    face["norm"] = round(norm, 4)
                offset += count
                item.record["took_ms"] = round(item.record["took_ms"] + per_face_ms * count, 3)
                if "timings" in item.record:
                    item.record["timings"]["embed_ms"] = round(per_face_ms * count, 3)
            item.record["faces"] = faces

    @staticmethod
    def _face(item: _Pending, index: int, options: AnalysisOptions) -> FaceRecord:
        points = item.detections.keypoints[index]
        face: FaceRecord = {
            "bbox": [round(float(v), 2) for v in item.detections.boxes[index]],
            "prob": round(float(item.detections.scores[index]), 5),
            "landmarks": _points(points),
        }
        FaceAnalyzer._add_attributes(face, item, index)
        if options.return_face_data and item.crops:
            face["facedata"] = _encode_jpeg(item.crops[index])
        return face
