"""Sizing images for the detector: scale down to fit, never up, and pad to the network stride."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from worker.imaging.align import turn_onto

DETECTOR_STRIDE = 32  # SCRFD and RetinaFace inputs must be multiples of their largest stride
# Side ratio between a detector canvas and its next coarse level. SCRFD-500M finds faces from
# about 16 to 340 canvas px wide (bench/coarse.py), so a step of 4 leaves the levels' ranges
# overlapping by a factor of 5, at 1/16 of the previous level's pixels.
COARSE_STEP = 4


@dataclass(frozen=True, slots=True)
class Letterbox:
    """An image placed at the top-left of a zero canvas; ``scale`` maps the image's px -> canvas px
    (in the pipeline: decoded px -> detector canvas px, see worker/frames.py). The image fills
    ``canvas[:height, :width]``; the rest is padding."""

    canvas: NDArray[np.uint8]
    scale: float
    width: int
    height: int


def fit_scale(width: int, height: int, max_size: tuple[int, int], max_pixels: int = 0) -> float:
    """Largest scale <= 1 that fits (width, height) into max_size ((0, 0): any size) and, with
    ``max_pixels``, into that many pixels (the detector canvas cap, FACEREST_MAX_DETECT_PIXELS)."""
    max_w, max_h = max_size
    scale = 1.0 if max_w == 0 or max_h == 0 else min(1.0, max_w / width, max_h / height)
    if max_pixels and width * height * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
    return scale


def capped_size(max_size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """max_size shrunk, proportions kept, to at most ``max_pixels`` (0: no cap); (0, 0) stays."""
    max_w, max_h = max_size
    if not max_pixels or max_w * max_h <= max_pixels:
        return max_size
    shrink = math.sqrt(max_pixels / (max_w * max_h))
    return max(1, int(max_w * shrink)), max(1, int(max_h * shrink))


def _round_up(value: int, multiple: int) -> int:
    return max(multiple, -(-value // multiple) * multiple)


def letterbox(
    image: NDArray[np.uint8], max_size: tuple[int, int], fill_max_size: bool = False, max_pixels: int = 0
) -> Letterbox:
    """Scale into max_size (never upscaling) and pad right/bottom to a multiple of the stride.

    ``max_pixels`` caps the scaled image's pixels (0: no cap), whatever max_size allows: the
    detector's memory grows with its canvas (about 44 bytes a pixel for SCRFD, bench/memory.py).
    ``fill_max_size`` pads the canvas to the whole of max_size (shrunk to ``max_pixels``), so
    that every image of a request size gives the network one input shape (GPUs pay dearly for
    each new shape).
    """
    height, width = image.shape[:2]
    if fill_max_size:
        max_size = capped_size(max_size, max_pixels)
    scale = fit_scale(width, height, max_size, max_pixels)
    # Truncate like the reference implementation: SCRFD's small-face boxes move noticeably
    # with a one-pixel change of the resized image.
    new_w, new_h = max(1, int(width * scale + 1e-6)), max(1, int(height * scale + 1e-6))
    resized = image if scale == 1.0 else cv2.resize(image, (new_w, new_h))
    canvas_w, canvas_h = (
        (max(new_w, max_size[0]), max(new_h, max_size[1])) if fill_max_size else (new_w, new_h)
    )
    canvas = np.zeros(
        (_round_up(canvas_h, DETECTOR_STRIDE), _round_up(canvas_w, DETECTOR_STRIDE), 3), np.uint8
    )
    canvas[:new_h, :new_w] = resized
    return Letterbox(canvas, new_h / height, new_w, new_h)


def shrink(boxed: Letterbox, factor: int, fill_canvas: bool = False) -> Letterbox:
    """The letterboxed image ``factor`` times smaller, area-averaged (no aliasing), padded to the
    stride. ``fill_canvas``: the canvas is the old one's sides / factor, so that one input shape
    per request size stays one (GPU)."""
    new_w, new_h = max(1, round(boxed.width / factor)), max(1, round(boxed.height / factor))
    content = boxed.canvas[: boxed.height, : boxed.width]
    resized = cv2.resize(content, (new_w, new_h), interpolation=cv2.INTER_AREA)
    old_h, old_w = boxed.canvas.shape[:2]
    canvas_w, canvas_h = (
        (max(new_w, old_w // factor), max(new_h, old_h // factor)) if fill_canvas else (new_w, new_h)
    )
    canvas = np.zeros(
        (_round_up(canvas_h, DETECTOR_STRIDE), _round_up(canvas_w, DETECTOR_STRIDE), 3), np.uint8
    )
    canvas[:new_h, :new_w] = resized
    return Letterbox(canvas, boxed.scale * new_h / boxed.height, new_w, new_h)


def enlarged(image: NDArray[np.uint8], boxed: Letterbox, factor: int, fill_canvas: bool = False) -> Letterbox:
    """``image`` at ``factor`` times the scale of its letterbox ``boxed``, padded to the stride
    (resized as ``letterbox`` does); ``fill_canvas``: at least ``boxed``'s canvas (one shape)."""
    height, width = image.shape[:2]
    scale = boxed.scale * factor
    new_w, new_h = max(1, int(width * scale + 1e-6)), max(1, int(height * scale + 1e-6))
    old_h, old_w = boxed.canvas.shape[:2]
    canvas_w, canvas_h = (max(new_w, old_w), max(new_h, old_h)) if fill_canvas else (new_w, new_h)
    canvas = np.zeros(
        (_round_up(canvas_h, DETECTOR_STRIDE), _round_up(canvas_w, DETECTOR_STRIDE), 3), np.uint8
    )
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    return Letterbox(canvas, new_h / height, new_w, new_h)


# The tilt of the turned copies of a small photo where no face was found upright. Upright,
# SCRFD misses few tilted faces in 80 to 300 px crops, more the more they lean (bench/tilted.py:
# none of 300 at 25 to 45 degrees, 30 of 300 at 75 to 90); 45 degrees either way brings each
# of them within 45 degrees of upright.
TURN_DEGREES = 45.0


@dataclass(frozen=True, slots=True)
class Warped:
    """Pixels of an image placed on a detector canvas by an affine map (turned, scaled, moved);
    ``to_image`` is the 2x3 map from canvas px back to the image's px, ``scale`` the canvas px
    per image px."""

    canvas: NDArray[np.uint8]
    to_image: NDArray[np.float32]
    scale: float

    @classmethod
    def by(cls, image: NDArray[np.uint8], to_canvas: NDArray[Any], size: tuple[int, int]) -> Warped:
        """``image`` warped by the 2x3 map ``to_canvas`` onto a canvas of ``size`` (width, height);
        outside the image, zeros (as the letterbox's padding)."""
        canvas = cv2.warpAffine(image, to_canvas, size)
        scale = float(np.sqrt(abs(np.linalg.det(to_canvas[:, :2]))))
        back = cv2.invertAffineTransform(to_canvas)
        return cls(np.asarray(canvas, np.uint8), np.asarray(back, np.float32), scale)


def turned(image: NDArray[np.uint8], boxed: Letterbox, degrees: float, fill_canvas: bool = False) -> Warped:
    """``image`` turned by ``degrees`` (counter-clockwise) about its centre, at sqrt(2) times the
    scale of its letterbox ``boxed``, whole on a square canvas (a w x h photo turned 45 degrees
    spans (w + h) / sqrt(2) each way), padded to the stride. ``fill_canvas``: ``boxed``'s canvas,
    the scale lowered where the turned photo would not fit in it (one input shape)."""
    height, width = image.shape[:2]
    scale = boxed.scale * math.sqrt(2)
    radians = math.radians(degrees)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    span_w, span_h = width * cos + height * sin, width * sin + height * cos  # at scale 1
    if fill_canvas:
        canvas_h, canvas_w = boxed.canvas.shape[:2]
        scale = min(scale, canvas_w / span_w, canvas_h / span_h)
    else:
        side = _round_up(math.ceil(max(span_w, span_h) * scale - 1e-6), DETECTOR_STRIDE)
        canvas_w = canvas_h = side
    matrix = turn_onto((width / 2, height / 2), degrees, scale, (canvas_w / 2, canvas_h / 2))
    return Warped.by(image, matrix, (canvas_w, canvas_h))


def quarter_turned(image: NDArray[np.uint8], quarters: int) -> Warped:
    """``image`` turned by ``quarters`` quarter turns counter-clockwise (as ``np.rot90`` counts
    them), at its own scale: every pixel moved, none resampled."""
    height, width = image.shape[:2]
    # Where a canvas point (x, y) lies in the image, per quarter turn: the top-right corner of
    # the image is the top-left of the canvas turned once.
    to_image = {
        0: [[1, 0, 0], [0, 1, 0]],
        1: [[0, -1, width], [1, 0, 0]],
        2: [[-1, 0, width], [0, -1, height]],
        3: [[0, 1, 0], [-1, 0, height]],
    }[quarters % 4]
    canvas = np.ascontiguousarray(np.rot90(image, quarters % 4))
    return Warped(canvas, np.asarray(to_image, np.float32), 1.0)


def coarse_levels(boxed: Letterbox, full_frame_side: int, fill_canvas: bool = False) -> list[Letterbox]:
    """Smaller copies of a detector canvas for the faces too large for it: each COARSE_STEP times
    smaller than the one before, until a face filling the whole image fits the detector
    (``full_frame_side``: the longest canvas side on which it still finds such a face; 0: any)."""
    levels: list[Letterbox] = []
    current = boxed
    while full_frame_side and max(current.width, current.height) > full_frame_side:
        current = shrink(current, COARSE_STEP, fill_canvas)
        levels.append(current)
    return levels


def face_window(
    image: NDArray[np.uint8], box: NDArray[np.float32], face_side: int, context: float, degrees: float = 0.0
) -> Warped:
    """The square of ``image`` centred on ``box``, ``context`` times its longer side, resized so
    that the box's longer side spans about ``face_side`` canvas px (area-averaged when it
    shrinks); where the square leaves the image, zeros (as the letterbox's padding).
    ``degrees``: the square turned that much (counter-clockwise) about the box's centre."""
    x1, y1, x2, y2 = (float(v) for v in box)
    region = max(1, round(max(x2 - x1, y2 - y1) * context))
    side = _round_up(round(face_side * context), DETECTOR_STRIDE)
    if degrees and side < region:
        # Shrinking: the square that holds the turned one's corners, area-averaged first (a turn
        # alone would sample the face sparsely and alias), then turned at its new scale.
        wide = face_window(image, box, face_side, context * math.sqrt(2))
        width = wide.canvas.shape[1]
        turn = turn_onto((width / 2, width / 2), degrees, side / region / wide.scale, (side / 2, side / 2))
        inner = Warped.by(wide.canvas, turn, (side, side))
        linear, shift = wide.to_image[:, :2], wide.to_image[:, 2]
        back = np.hstack([linear @ inner.to_image[:, :2], (linear @ inner.to_image[:, 2] + shift)[:, None]])
        return Warped(inner.canvas, np.asarray(back, np.float32), side / region)
    if degrees:
        centre = ((x1 + x2) / 2, (y1 + y2) / 2)
        matrix = turn_onto(centre, degrees, side / region, (side / 2, side / 2))
        return Warped.by(image, matrix, (side, side))
    left, top = round((x1 + x2 - region) / 2), round((y1 + y2 - region) / 2)
    height, width = image.shape[:2]
    square = np.zeros((region, region, 3), np.uint8)
    inside_x, inside_y = (max(0, left), min(width, left + region)), (max(0, top), min(height, top + region))
    if inside_x[0] < inside_x[1] and inside_y[0] < inside_y[1]:
        square[inside_y[0] - top : inside_y[1] - top, inside_x[0] - left : inside_x[1] - left] = image[
            inside_y[0] : inside_y[1], inside_x[0] : inside_x[1]
        ]
    shrinking = side < region
    canvas = cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    scale = side / region
    back = np.array([[1 / scale, 0, left], [0, 1 / scale, top]], np.float32)
    return Warped(np.asarray(canvas, np.uint8), back, scale)
