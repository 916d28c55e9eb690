"""One job's images: decode -> letterbox -> detect -> attributes -> align -> embed.

Returns typed, frozen faces in full-size image px (worker/frames.py names the frames);
worker/records.py turns them into wire records. Model calls go through BatchedModels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from shared.contract import AnalysisOptions, FaceQuality
from shared.errors import FaceRestError, InternalError, LimitExceeded
from worker.batched import BatchedModels
from worker.frames import (
    canvas_to_decoded,
    decoded_to_full_size,
    points_decoded_to_full_size,
    warped_to_decoded,
)
from worker.imaging.align import roll_degrees, upright_quarters, warp_to_template
from worker.imaging.decode import DecodedImage, RGBImage, ScaleRule, decode_image
from worker.imaging.resize import (
    TURN_DEGREES,
    Letterbox,
    coarse_levels,
    enlarged,
    face_window,
    fit_scale,
    letterbox,
    quarter_turned,
    turned,
)
from worker.models.base import Detections, GenderAge
from worker.models.postprocess import box_iou, has_free_square, merge_passes
from worker.quality import face_quality

# The smallest faces SCRFD finds span about this many pixels of its input canvas.
SMALLEST_DETECTED_FACE = 16
# Faces of two detection passes overlapping more than this are one face (SCRFD's and
# RetinaFace's own NMS threshold).
PASS_MERGE_IOU = 0.4
# A face found by a coarse pass, or wider than the detector's reach, is detected again where it
# spans this many px (well inside SCRFD's 16-340 px), in a window of this many times its size (a
# 320 px canvas: one input shape); that detection replaces it where their boxes overlap this much.
REFINE_FACE_SIDE = 160
REFINE_CONTEXT = 2.0
REFINE_MIN_IOU = 0.5
# A photo small enough for no coarse pass, where the main pass found no face, is detected again
# at this many times its scale.
FINE_STEP = 2
# A face turned further than this in the image plane (its landmarks say) is detected again
# upright in its window (``_refine``): SCRFD finds most faces at any tilt, but places the
# landmarks of a lying face worse (bench/tilted.py: median error 0.083 of the face's side at
# 75 to 90 degrees, 0.013 upright in the window). At 30 degrees two of t1.jpg's faces would be,
# and the package photos' results would no longer equal the reference's (test_reference.py).
REFINE_MIN_ROLL = 45.0
# A photo whose faces found lie on their side is detected again turned upright only where those
# faces cover less than this share of it: more room than a face crop (one face, margins of
# about 40 % of its side: half the crop) leaves.
SIDEWAYS_MAX_COVER = 0.25

log = logging.getLogger("facerest.worker")


@dataclass(frozen=True, slots=True)
class AnalyzedFace:
    """One face; ``box``, ``keypoints`` and ``landmarks106`` in full-size image px."""

    box: NDArray[np.float32]  # (4,) x1, y1, x2, y2
    score: float
    keypoints: NDArray[np.float32]  # (5, 2) eyes, nose tip, mouth corners
    crop: NDArray[np.uint8] | None = None  # the recognizer's aligned RGB input
    embedding: NDArray[np.float32] | None = None  # raw, not normalised
    male: float | None = None  # probability of "male"
    age: float | None = None  # years
    landmarks106: NDArray[np.float32] | None = None  # (106, 2)
    quality: FaceQuality | None = None


@dataclass(frozen=True, slots=True)
class AnalyzedImage:
    width: int  # full size, upright
    height: int
    faces: tuple[AnalyzedFace, ...]
    took_ms: float
    timings: Mapping[str, float]  # decode_ms, detect_ms, attributes_ms, align_ms, embed_ms


@dataclass(frozen=True, slots=True)
class FailedImage:
    error: FaceRestError
    took_ms: float


ImageOutcome = AnalyzedImage | FailedImage


@dataclass(slots=True)
class _Prepared:
    """One decoded image between detection and the job's embedding call."""

    width: int
    height: int
    took_ms: float
    timings: dict[str, float]
    found: Detections  # full-size image px
    crops: list[NDArray[np.uint8]] = field(default_factory=list)
    genderage: GenderAge | None = None
    landmarks106: NDArray[np.float32] | None = None  # full-size image px


def select_faces(found: Detections, options: AnalysisOptions) -> NDArray[np.intp]:
    """Indices of the faces to keep: min_face_size, then the ``limit_faces`` largest, in
    descending score order. ``found`` is in full-size image px."""
    widths = found.boxes[:, 2] - found.boxes[:, 0]
    heights = found.boxes[:, 3] - found.boxes[:, 1]
    keep = np.flatnonzero((widths >= options.min_face_size) & (heights >= options.min_face_size))
    if len(keep) > options.limit_faces:
        areas = widths[keep] * heights[keep]
        keep = np.sort(keep[np.argsort(-areas, kind="stable")[: options.limit_faces]])
    return keep


def decode_scale(options: AnalysisOptions, recognizer_input: int, max_detect_pixels: int = 0) -> ScaleRule:
    """How small an image may decode without any face we could return losing pixels the
    recognizer needs: the smallest such face (the detector's limit at ``max_size`` and the
    canvas cap ``max_detect_pixels``, or ``min_face_size``) must still span the recognizer's
    input (112 px) in decoded px."""

    def min_scale(width: int, height: int) -> float:
        if options.embed_only:
            return 1.0
        smallest = SMALLEST_DETECTED_FACE / fit_scale(width, height, options.max_size, max_detect_pixels)
        return min(1.0, recognizer_input / max(smallest, options.min_face_size))

    return min_scale


def check_total_faces(found: int, searched: int, images: int, limit: int) -> None:
    """Fail the whole job once its images hold more than ``limit`` faces (0: no limit): checked
    after each image's detection, so neither the remaining images' detection nor any embedding
    (the cost that grows with faces) is spent on a request that will be refused."""
    if limit and found > limit:
        raise LimitExceeded(
            f"{found} faces found in {searched} of the request's {images} images, more than "
            f"max_faces_per_request={limit}; raise the detection threshold or send fewer images "
            "per request"
        )


def upright_turns(found: Detections, rolls: NDArray[np.float32] | None = None) -> NDArray[np.float64]:
    """The turn (degrees, counter-clockwise) that sets each face lying more than REFINE_MIN_ROLL
    upright; 0 for the others. ``rolls``: ``roll_degrees`` of their keypoints, when known."""
    rolls = roll_degrees(found.keypoints) if rolls is None else rolls
    turns: NDArray[np.float64] = np.where(np.abs(rolls) > REFINE_MIN_ROLL, -rolls.astype(np.float64), 0.0)
    return turns


def _room_for_more(found: Detections, image: RGBImage) -> bool:
    """Whether the faces ``found`` leave room in ``image`` for more faces: their boxes cover less
    than SIDEWAYS_MAX_COVER of it. A photo one lying face fills (a face crop) has none: its face
    is set upright in its window alone (``_refine``)."""
    sides = found.boxes[:, 2:] - found.boxes[:, :2]
    covered = float(np.prod(sides, axis=1).sum())
    return covered < SIDEWAYS_MAX_COVER * float(image.shape[0] * image.shape[1])


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def image_internal_error(request_id: str) -> InternalError:
    """What the client learns of an unexpected exception on one image: where to look, no library
    text (the worker log keeps the traceback)."""
    where = f"; request id {request_id}" if request_id else ""
    return InternalError(f"internal error on this image{where}")


class Pipeline:
    """Runs a job's images through the models; per-request choices come in as arguments."""

    def __init__(self, models: BatchedModels, max_pixels: int, flip: bool = False) -> None:
        self._models = models
        self._max_pixels = max_pixels
        self._flip = flip  # for jobs whose options leave it to the worker (FACEREST_FLIP)

    def run(
        self, images: Sequence[bytes], options: AnalysisOptions, detector: str, request_id: str = ""
    ) -> list[ImageOutcome]:
        """One outcome per image, in order; a bad image fails alone. ``detector`` is a loaded key.

        Any exception on one image (decoder, detector, attribute models, alignment) becomes that
        image's error: a FaceRestError as itself, anything else an internal_error naming
        ``request_id``. A failed embedding call fails the images whose faces it carried.
        """
        return self._run_each(
            len(images),
            lambda index, start: self._prepare(images[index], options, detector, start),
            options,
            request_id,
        )

    def run_frames(
        self, frames: Sequence[RGBImage], options: AnalysisOptions, detector: str, request_id: str = ""
    ) -> list[ImageOutcome]:
        """``run`` for decoded frames (a video's): upright RGB pixels, each its own full size."""

        def prepare(index: int, start: float) -> _Prepared:
            pixels = frames[index]
            decoded = DecodedImage(pixels, pixels.shape[1], pixels.shape[0])
            # Turned upright by the container's rotation already: no sideways pass per frame.
            item = self._detect(decoded, options, detector, {"decode_ms": 0.0}, sideways=False)
            item.took_ms = _ms_since(start)
            return item

        return self._run_each(len(frames), prepare, options, request_id)

    def _run_each(
        self,
        count: int,
        prepare: Callable[[int, float], _Prepared],
        options: AnalysisOptions,
        request_id: str,
    ) -> list[ImageOutcome]:
        prepared: list[_Prepared | FailedImage] = []
        found = 0
        for index in range(count):
            start = time.perf_counter()
            try:
                item = prepare(index, start)
            except FaceRestError as exc:
                prepared.append(FailedImage(exc, _ms_since(start)))
                continue
            except Exception:
                log.exception("image %d of request %s failed", index, request_id or "-")
                prepared.append(FailedImage(image_internal_error(request_id), _ms_since(start)))
                continue
            prepared.append(item)
            found += len(item.found)
            check_total_faces(found, index + 1, count, options.max_faces_total)
        return self._embed(prepared, options, request_id)

    def _prepare(self, data: bytes, options: AnalysisOptions, detector: str, start: float) -> _Prepared:
        recognizer = self._models.loaded.recognizer
        rule = decode_scale(options, recognizer.input_size, self._models.limits.max_detect_pixels)
        decoded = decode_image(data, self._max_pixels, rule)
        timings = {"decode_ms": _ms_since(start)}
        if options.embed_only:
            # The whole image is the face: its box in full-size image px, no keypoints.
            whole = Detections(
                np.array([[0, 0, decoded.width, decoded.height]], np.float32),
                np.ones(1, np.float32),
                np.zeros((1, 5, 2), np.float32),
            )
            item = _Prepared(
                decoded.width, decoded.height, 0.0, timings, whole, [self._as_crop(decoded.pixels)]
            )
        else:
            item = self._detect(decoded, options, detector, timings)
        item.took_ms = _ms_since(start)
        return item

    def _as_crop(self, image: RGBImage) -> NDArray[np.uint8]:
        size = self._models.loaded.recognizer.input_size
        if image.shape[:2] == (size, size):
            return image
        return np.asarray(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), np.uint8)

    def _detect(
        self,
        decoded: DecodedImage,
        options: AnalysisOptions,
        detector: str,
        timings: dict[str, float],
        sideways: bool = True,
    ) -> _Prepared:
        """Detect, then run the per-face models on the decoded pixels (``sideways``: as
        ``_find_faces``)."""
        step = time.perf_counter()
        image = decoded.pixels
        in_decoded = self._find_faces(image, options, detector, sideways)
        in_full_size = decoded_to_full_size(in_decoded, decoded)
        keep = select_faces(in_full_size, options)
        in_decoded = in_decoded.take(keep)
        timings["detect_ms"] = _ms_since(step)
        item = _Prepared(decoded.width, decoded.height, 0.0, timings, in_full_size.take(keep))
        if options.extract_ga or options.return_landmarks106:
            step = time.perf_counter()
            if options.extract_ga:
                item.genderage = self._models.gender_age(image, in_decoded.keypoints)
            if options.return_landmarks106:
                landmarks = self._models.landmarks106(image, in_decoded.boxes, upright_turns(in_decoded))
                item.landmarks106 = (
                    None if landmarks is None else points_decoded_to_full_size(landmarks, decoded)
                )
            timings["attributes_ms"] = _ms_since(step)
        step = time.perf_counter()
        if options.extract_embedding or options.return_face_data or options.return_quality:
            recognizer = self._models.loaded.recognizer
            size, template = recognizer.input_size, recognizer.template
            item.crops = [warp_to_template(image, points, template, size) for points in in_decoded.keypoints]
        timings["align_ms"] = _ms_since(step)
        return item

    def _find_faces(
        self, image: RGBImage, options: AnalysisOptions, detector: str, sideways: bool = True
    ) -> Detections:
        """Faces in decoded px: the detection passes (``_passes``), then the faces whose box and
        landmarks came from a coarse canvas, from the edge of the detector's range, or from a
        face turned far from upright, detected again on a window around each (``_refine``).

        With ``sideways`` (a photo: a video's frames come upright), a photo turned on its side
        or upside down (its EXIF orientation lost or never set) shows SCRFD a few of its faces,
        lying the same way: where most of the faces found lie more than 45 degrees from
        upright, and their boxes cover less than SIDEWAYS_MAX_COVER of it, the passes run again
        on the photo turned upright. Where those find more faces, they are kept, with the faces
        found as the photo is that none of them overlaps (bench/sideways.py: t1.jpg and gdp.jpg
        turned a quarter either way, 1 or 2 faces found before, all 6 and 5 now)."""
        found, coarse = self._passes(image, options, detector)
        rolls = roll_degrees(found.keypoints)
        quarters = upright_quarters(rolls, found.scores) if sideways else 0
        if quarters and _room_for_more(found, image):
            upright = quarter_turned(image, quarters)
            again, again_coarse = self._passes(upright.canvas, options, detector)
            if len(again) > len(found):
                refined = self._refine(upright.canvas, again, again_coarse, detector, options.threshold)
                turned_back = warped_to_decoded(refined, upright)
                # A face found as the photo is that the upright pass did not (one upright in the
                # photo as sent, where SCRFD sees it lying) stays.
                overlap = box_iou(found.boxes, turned_back.boxes).max(axis=1, initial=0.0)
                alone = np.flatnonzero(overlap < PASS_MERGE_IOU)
                if not len(alone):
                    return turned_back
                rest = self._refine(
                    image, found.take(alone), coarse[alone], detector, options.threshold, rolls[alone]
                )
                return Detections.joined([turned_back, rest])
        return self._refine(image, found, coarse, detector, options.threshold, rolls)

    def _passes(
        self, image: RGBImage, options: AnalysisOptions, detector: str
    ) -> tuple[Detections, NDArray[np.bool_]]:
        """Faces in decoded px, and which of them to refine: the pass over the canvas ``max_size``
        gives; where a face filling the image would be too large for the detector there and the
        faces found leave room for one, coarse passes over smaller copies of that canvas (one
        batched call), merged; where the canvas is small enough for no coarse pass and nothing
        was found, a pass at twice its scale, then over the photo turned (``_turned``). Faces
        taken from a coarse pass, or wider than the detector's reach on the main canvas, are
        marked to be detected again at a size the detector handles well.

        Where no other pass runs or finds anything new, the result is the main pass's own
        (insightface's): its faces win every overlap, a coarse face only counts where none of
        them overlaps it. A face wider than the detector's reach on its canvas is left to the
        next, coarser pass, which sees it at a size it handles: that large, the detector also
        returns parts of a face as faces (RetinaFace: eyes and mouth of a 1500 px face).
        """
        limits = self._models.limits
        reach = self._models.loaded.detectors[detector].full_frame_side
        boxed = letterbox(image, options.max_size, limits.static_shapes, limits.max_detect_pixels)
        levels = coarse_levels(boxed, reach, limits.static_shapes)
        (first,) = self._models.detect(detector, [boxed.canvas], options.threshold)
        main = canvas_to_decoded(first, boxed)
        none = np.zeros(len(main), bool)
        if not levels:
            if not len(first) and reach:
                # A face filling a small photo (CFP: 11 of 5,476 photos of 58 to 269 px) is
                # missed at its own scale and found at twice it (9 of the 11), as insightface's
                # fixed 640 px canvas, which enlarges small photos, finds it.
                larger = enlarged(image, boxed, FINE_STEP, limits.static_shapes)
                (again,) = self._models.detect(detector, [larger.canvas], options.threshold)
                small = (
                    canvas_to_decoded(again, larger)
                    if len(again)
                    else self._turned(image, boxed, detector, options.threshold)
                )
                return small, np.zeros(len(small), bool)
            return main, none
        # A face the main pass cannot see is wider than its reach (CFP: every face that only
        # the coarse pass found spanned 321 px or more of a 640 px canvas), so it covers a
        # square of that side (or the frame's height) that no face found overlaps; without one
        # the coarse passes have nothing to add, and are not run.
        side = min(reach, boxed.width, boxed.height)
        if not has_free_square(first.boxes, boxed.width, boxed.height, side):
            return main, first.boxes[:, 2] - first.boxes[:, 0] > reach
        passes = [boxed, *levels]
        found = [first, *self._models.detect(detector, [level.canvas for level in levels], options.threshold)]
        if not any(len(coarse) for coarse in found[1:]):
            return main, none
        kept = [
            f if index == len(found) - 1 else f.take(np.flatnonzero(f.boxes[:, 2] - f.boxes[:, 0] <= reach))
            for index, f in enumerate(found)
        ]
        in_decoded = [canvas_to_decoded(f, level) for f, level in zip(kept, passes, strict=True)]
        merged = Detections.joined(in_decoded)
        ranks = np.concatenate([np.full(len(f), index) for index, f in enumerate(in_decoded)])
        keep = merge_passes(merged.boxes, merged.scores, ranks, PASS_MERGE_IOU)
        if len(kept[0]) == len(main) and np.array_equal(np.sort(keep), np.arange(len(main))):
            return main, none  # nothing dropped or added: keep the main pass's own order
        return merged.take(keep), ranks[keep] > 0

    def _turned(self, image: RGBImage, boxed: Letterbox, detector: str, threshold: float) -> Detections:
        """Faces of a small photo where none was found upright: the photo turned TURN_DEGREES
        either way (one call of two canvases), the turn with the best face kept, its faces
        turned back. CFP: the last 2 of its 7,000 photos without a face (heads thrown back or
        bowed); bench/tilted.py: 42 of the 44 faces tilted 45 to 90 degrees in 1,200 crops of
        80 to 300 px that the passes before missed; 2 detections more in 1,000 small crops of
        faceless photos."""
        copies = [
            turned(image, boxed, sign * TURN_DEGREES, self._models.limits.static_shapes) for sign in (1, -1)
        ]
        found = self._models.detect(detector, [copy.canvas for copy in copies], threshold)
        best = max(range(len(copies)), key=lambda i: float(found[i].scores.max(initial=0.0)))
        return warped_to_decoded(found[best], copies[best])

    def _refine(
        self,
        image: RGBImage,
        found: Detections,
        coarse: NDArray[np.bool_],
        detector: str,
        threshold: float,
        rolls: NDArray[np.float32] | None = None,
    ) -> Detections:
        """The faces marked ``coarse`` (``_passes``), and those lying more than REFINE_MIN_ROLL
        on their side (``rolls``: ``roll_degrees`` of their keypoints, when already known),
        detected again on a window of the decoded image around each, where the face spans
        REFINE_FACE_SIDE px, turned upright: box and landmarks from a canvas 4 or 16 times
        coarser, from the edge of the detector's range, or of a face lying on its side, are less
        precise, and the landmarks decide the alignment (CFP, bench/tilted.py: docs/accuracy.md).
        Where the window shows no face overlapping it, a face stays."""
        turns = upright_turns(found, rolls)
        indices = np.flatnonzero(coarse | (turns != 0))
        if not len(indices):
            return found
        windows = [
            face_window(image, found.boxes[i], REFINE_FACE_SIDE, REFINE_CONTEXT, float(turns[i]))
            for i in indices
        ]
        redone = self._models.detect(detector, [w.canvas for w in windows], threshold)
        boxes, scores, keypoints = found.boxes.copy(), found.scores.copy(), found.keypoints.copy()
        for index, window, faces in zip(indices, windows, redone, strict=True):
            in_decoded = warped_to_decoded(faces, window)
            if not len(in_decoded):
                continue
            overlap = box_iou(in_decoded.boxes, boxes[index : index + 1])[:, 0]
            best = int(overlap.argmax())
            if overlap[best] < REFINE_MIN_IOU:
                continue
            boxes[index], scores[index] = in_decoded.boxes[best], in_decoded.scores[best]
            keypoints[index] = in_decoded.keypoints[best]
        return Detections(boxes, scores, keypoints)

    def _embed_crops(self, crops: list[NDArray[np.uint8]], flip: bool) -> list[NDArray[np.float32]]:
        """Raw embeddings; with ``flip`` the mean of each crop's and its mirror image's, both in
        one batched call (insightface's evaluation sums them; the mean keeps the norm's scale)."""
        if not flip:
            return self._models.embed(crops)
        mirrored = [np.ascontiguousarray(crop[:, ::-1]) for crop in crops]
        vectors = self._models.embed(crops + mirrored)
        count = len(crops)
        return [
            np.asarray((plain + mirror) / 2, np.float32)
            for plain, mirror in zip(vectors[:count], vectors[count:], strict=True)
        ]

    def _embed(
        self, prepared: list[_Prepared | FailedImage], options: AnalysisOptions, request_id: str
    ) -> list[ImageOutcome]:
        """Embed the faces of all images of the job in one batched call; each image's took_ms
        gets its faces' share of that call. If the call fails, each image with faces in it gets
        an internal_error; images without faces are answered as usual."""
        crops = [crop for item in prepared if isinstance(item, _Prepared) for crop in item.crops]
        vectors: list[NDArray[np.float32]] = []
        per_face_ms = 0.0
        embed_failed = False
        if options.extract_embedding and crops:
            step = time.perf_counter()
            flip = self._flip if options.flip is None else options.flip
            try:
                vectors = self._embed_crops(crops, flip)
            except Exception:
                log.exception("embedding %d faces of request %s failed", len(crops), request_id or "-")
                embed_failed = True
            per_face_ms = _ms_since(step) / len(crops)
        outcomes: list[ImageOutcome] = []
        offset = 0
        for item in prepared:
            if isinstance(item, FailedImage):
                outcomes.append(item)
                continue
            if embed_failed and item.crops:
                took_ms = round(item.took_ms + per_face_ms * len(item.crops), 3)
                outcomes.append(FailedImage(image_internal_error(request_id), took_ms))
                continue
            count = len(item.found)
            embeddings: Sequence[NDArray[np.float32] | None] = [None] * count
            took_ms = item.took_ms
            if options.extract_embedding:
                embeddings = vectors[offset : offset + count]
                offset += count
                took_ms = round(took_ms + per_face_ms * count, 3)
                item.timings["embed_ms"] = round(per_face_ms * count, 3)
            faces = tuple(_face(item, i, embeddings[i], options.return_quality) for i in range(count))
            outcomes.append(AnalyzedImage(item.width, item.height, faces, took_ms, item.timings))
        return outcomes


def _face(item: _Prepared, index: int, embedding: NDArray[np.float32] | None, quality: bool) -> AnalyzedFace:
    genderage = item.genderage
    box, keypoints = item.found.boxes[index], item.found.keypoints[index]
    return AnalyzedFace(
        box=box,
        score=float(item.found.scores[index]),
        keypoints=keypoints,
        crop=item.crops[index] if item.crops else None,
        embedding=embedding,
        male=None if genderage is None else float(genderage.male[index]),
        age=None if genderage is None else float(genderage.age[index]),
        landmarks106=None if item.landmarks106 is None else item.landmarks106[index],
        quality=face_quality(item.crops[index], keypoints, box) if quality and item.crops else None,
    )
