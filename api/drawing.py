"""Faces drawn on their photo, for /draw_detections: boxes, keypoints, score, width, gender/age.

Drawn in the API with Pillow, on the bytes the API already holds: a debugging view, as in
InsightFace-REST, not part of the pipeline. The photo is turned upright by the same rule as the
worker's decoder (EXIF orientation of JPEG and MPO only, shared/images.py's probe), so the
faces' coordinates (upright, full-size pixels) land where the worker found them. Strokes and
text scale with the photo, so the marks stay readable on a 200 px thumbnail and a 40 MP photo.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from shared.contract import Face
from shared.images import PILLOW_OPENERS, probe

ImageFormat = Literal["PNG", "JPEG"]
MEDIA_TYPES: dict[ImageFormat, str] = {"PNG": "image/png", "JPEG": "image/jpeg"}
JPEG_QUALITY = 90

BOX_COLOUR = (0, 255, 0)
TEXT_COLOUR = (255, 255, 255)
LABEL_BACKGROUND = (0, 0, 0)
# The 5 keypoints in their order (left eye, right eye, nose, mouth corners), one colour each.
KEYPOINT_COLOURS = ((255, 0, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255))
DENSE_COLOUR = (255, 128, 0)
# One stroke pixel per this many pixels of the photo's longer side (at least 1): 2 px at 1000 px.
STROKE_PER_PIXELS = 500
# Text height: the photo's longer side / this, at least MIN_FONT_PX.
FONT_PER_PIXELS = 50
MIN_FONT_PX = 12


# EXIF orientation -> the turn that shows the stored pixels upright (Pillow's exif_transpose table).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class DrawStyle:
    landmarks: bool | Literal["106"] = True
    scores: bool = True
    sizes: bool = True
    gender_age: bool = False


def upright(data: bytes, max_pixels: int) -> Image.Image:
    """The photo's first frame as RGB, turned upright as the worker's decoder turns it."""
    header = probe(data, max_pixels)
    with Image.open(io.BytesIO(data), formats=PILLOW_OPENERS) as opened:
        opened.seek(0)
        image = opened.convert("RGB")
    turn = UPRIGHT.get(header.orientation)
    return image if turn is None else image.transpose(turn)


def _label(face: Face, style: DrawStyle) -> str:
    parts = []
    if style.scores:
        parts.append(f"{face.prob:.2f}")
    if style.sizes:
        parts.append(f"{round(face.bbox[2] - face.bbox[0])}px")
    if style.gender_age and face.gender is not None and face.age is not None:
        parts.append(f"{face.gender[0].upper()} {round(face.age)}")
    return " ".join(parts)


def draw(image: Image.Image, faces: Sequence[Face], style: DrawStyle) -> Image.Image:
    """``image`` with ``faces`` drawn on it (in place; returned for chaining)."""
    longer = max(image.size)
    stroke = max(1, round(longer / STROKE_PER_PIXELS))
    font = ImageFont.load_default(size=max(MIN_FONT_PX, round(longer / FONT_PER_PIXELS)))
    canvas = ImageDraw.Draw(image)
    for face in faces:
        x1, y1, x2, y2 = face.bbox
        canvas.rectangle((x1, y1, x2, y2), outline=BOX_COLOUR, width=stroke)
        if style.landmarks == "106" and face.landmarks106 is not None:
            _dots(canvas, face.landmarks106, [DENSE_COLOUR], max(1, stroke // 2))
        elif style.landmarks:
            _dots(canvas, face.landmarks, KEYPOINT_COLOURS, stroke + 1)
        text = _label(face, style)
        if text:
            left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
            height = bottom - top
            # Above the box, or inside its top when the box touches the photo's top edge.
            y = y1 - height - 2 * stroke if y1 - height - 2 * stroke >= 0 else y1 + stroke
            width = right - left + 2 * stroke
            x = max(0.0, min(x1, image.width - width))  # kept inside the photo's right edge
            canvas.rectangle((x, y, x + width, y + height + 2 * stroke), fill=LABEL_BACKGROUND)
            canvas.text((x + stroke - left, y + stroke - top), text, fill=TEXT_COLOUR, font=font)
    return image


def _dots(
    canvas: ImageDraw.ImageDraw,
    points: Sequence[tuple[float, float]],
    colours: Sequence[tuple[int, int, int]],
    radius: int,
) -> None:
    for index, (x, y) in enumerate(points):
        colour = colours[index % len(colours)]
        canvas.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)


def encode(image: Image.Image, image_format: ImageFormat) -> bytes:
    out = io.BytesIO()
    if image_format == "JPEG":
        image.save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(out, "PNG", compress_level=1)  # speed over size: a debugging view
    return out.getvalue()
