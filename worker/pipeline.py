"""FaceAnalyzer: decode -> resize -> detect -> attributes -> align -> embed, for the images of one job."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from shared.errors import FaceRestError, ModelNotLoaded
from shared.schemas import AnalysisOptions, ErrorRecord, FaceRecord, ImageRecord
from worker.imaging.align import warp_to_template
from worker.imaging.decode import RGBImage, decode_image
from worker.imaging.resize import letterbox
from worker.inference.registry import ModelSpec
from worker.models.base import (
    Detections,
    Detector,
    GenderAge,
    GenderAgeModel,
    LandmarkModel,
    Recognizer,
)

EMBED_BATCH = 32  # faces per recognizer call; larger batches gain nothing measurable on CPU


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


def select_faces(found: Detections, options: AnalysisOptions) -> Detections:
    """Apply min_face_size, then keep the ``limit_faces`` largest, in descending score order."""
    widths = found.boxes[:, 2] - found.boxes[:, 0]
    heights = found.boxes[:, 3] - found.boxes[:, 1]
    keep = np.flatnonzero((widths >= options.min_face_size) & (heights >= options.min_face_size))
    if len(keep) > options.limit_faces:
        areas = widths[keep] * heights[keep]
        keep = np.sort(keep[np.argsort(-areas, kind="stable")[: options.limit_faces]])
    return found.take(keep)


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
        # Model calls take the whole CPU: run one at a time, decode in parallel outside it.
        self._model_lock = threading.Lock()

    def detector_for(self, options: AnalysisOptions) -> Detector:
        if options.detector is None:
            return self.detector
        if options.detector not in self.detectors:
            available = list(self.detectors)
            raise ModelNotLoaded(
                f"detector {options.detector!r} is not loaded on this worker; "
                f"available: {', '.join(available)}",
                available,
            )
        return self.detectors[options.detector]

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

    def analyze(
        self,
        images: list[bytes | None],
        options: AnalysisOptions,
        known_errors: dict[int, ErrorRecord] | None = None,
    ) -> list[ImageRecord]:
        """One record per input image, in order; a bad image fails alone.

        Raises ModelNotLoaded (for the whole job) when the options need a model not loaded here.
        """
        self.detector_for(options)
        self.check_attributes(options)
        known_errors = known_errors or {}
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
        image = decode_image(data, self._max_pixels)
        timings = {"decode_ms": _ms_since(start)}
        height, width = image.shape[:2]
        record: ImageRecord = {"status": "ok", "size": [width, height], "took_ms": 0.0}
        if options.embed_only:
            crop = self._as_crop(image)
            found = Detections(
                np.array([[0, 0, width, height]], np.float32),
                np.ones(1, np.float32),
                np.zeros((1, 5, 2), np.float32),
            )
            item = _Pending(record, found, [crop])
        else:
            item = self._detect(image, options, record, timings)
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
        self, image: RGBImage, options: AnalysisOptions, record: ImageRecord, timings: dict[str, float]
    ) -> _Pending:
        detector = self.detector_for(options)
        step = time.perf_counter()
        boxed = letterbox(image, options.max_size)
        with self._model_lock:
            found = detector.detect(boxed.canvas, options.threshold)
        found = select_faces(found.scaled(1.0 / boxed.scale), options)
        timings["detect_ms"] = _ms_since(step)
        item = _Pending(record, found)
        if options.extract_ga or options.return_landmarks106:
            step = time.perf_counter()
            item.genderage = self._gender_age(image, found, options)
            item.landmarks106 = self._landmarks106(image, found, options)
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
        with self._model_lock:
            return model.predict(image, found.keypoints)

    def _landmarks106(
        self, image: RGBImage, found: Detections, options: AnalysisOptions
    ) -> NDArray[np.float32] | None:
        model = self.attributes.landmarks
        if not options.return_landmarks106 or model is None:
            return None
        with self._model_lock:
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
        """Embed the faces of all images in shared batches, then build the face records."""
        crops = [crop for item in pending for crop in item.crops]
        vectors = np.zeros((0, self.recognizer.dimension), np.float32)
        per_face_ms = 0.0
        if options.extract_embedding and crops:
            step = time.perf_counter()
            parts = []
            for begin in range(0, len(crops), EMBED_BATCH):
                batch = np.stack(crops[begin : begin + EMBED_BATCH])
                with self._model_lock:
                    parts.append(self.recognizer.embed(batch))
            vectors = np.concatenate(parts)
            per_face_ms = _ms_since(step) / len(crops)
        offset = 0
        for item in pending:
            if item.record["status"] != "ok":
                continue
            count = len(item.detections)
            faces: list[FaceRecord] = []
            for i in range(count):
                face: FaceRecord = {
                    "bbox": [round(float(v), 2) for v in item.detections.boxes[i]],
                    "prob": round(float(item.detections.scores[i]), 5),
                    "landmarks": _points(item.detections.keypoints[i]),
                }
                self._add_attributes(face, item, i)
                if options.extract_embedding:
                    raw = vectors[offset + i]
                    norm = float(np.linalg.norm(raw))
                    face["vec"] = (raw / max(norm, 1e-12)).astype(np.float32).tobytes()
                    face["norm"] = round(norm, 4)
                if options.return_face_data and item.crops:
                    face["facedata"] = _encode_jpeg(item.crops[i])
                faces.append(face)
            if options.extract_embedding:
                offset += count
                item.record["took_ms"] = round(item.record["took_ms"] + per_face_ms * count, 3)
                if "timings" in item.record:
                    item.record["timings"]["embed_ms"] = round(per_face_ms * count, 3)
            item.record["faces"] = faces
