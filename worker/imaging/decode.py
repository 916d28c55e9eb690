"""The one decoder: encoded bytes -> RGB uint8 array (H, W, 3), EXIF orientation applied.

JPEGs (most of the traffic) go through libjpeg-turbo via simplejpeg, straight to RGB and, when
the caller can do with fewer pixels, at 1/2, 1/4 or 1/8 of the size (libjpeg-turbo's DCT
scaling; its other factors, 3/8 to 7/8, measured slower than a full decode: docs/performance.md).
Other formats, and JPEGs that simplejpeg refuses (CMYK, corrupt data), go through OpenCV, then
Pillow.

Every path starts with shared/images.py's gate (``probe``: the format allow-list and the declared
size) and ends with the decoded size checked against ``max_pixels`` again, so a file whose
pixels disagree with its header is refused before its pixels are kept. Only the first frame of
multi-frame files (GIF, WebP, TIFF, MPO) is decoded. Library errors become InvalidImage or
LimitExceeded with our own words; the library's text goes to the log, not to the client.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg
from numpy.typing import NDArray
from PIL import Image, ImageOps, ImageSequence

from shared.errors import InvalidImage, LimitExceeded
from shared.images import PILLOW_OPENERS, ImageHeader, check_pixels, probe

RGBImage = NDArray[np.uint8]
log = logging.getLogger("facerest.decode")

# EXIF orientation -> (transpose first?, then cv2.flip code or None): what shows the stored
# pixels upright, as Pillow's ImageOps.exif_transpose does.
_UPRIGHT: dict[int, tuple[bool, int | None]] = {
    2: (False, 1),
    3: (False, -1),
    4: (False, 0),
    5: (True, None),
    6: (True, 1),
    7: (True, -1),
    8: (True, 0),
}


def _upright(pixels: RGBImage, orientation: int) -> RGBImage:
    if orientation not in _UPRIGHT:
        return pixels
    transpose, flip = _UPRIGHT[orientation]
    turned = cv2.transpose(pixels) if transpose else pixels
    return np.asarray(turned if flip is None else cv2.flip(turned, flip), np.uint8)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """Upright RGB pixels; ``width`` x ``height`` is the upright size of the full image, which the
    pixels may be smaller than (reduced-size decode). ``scale`` maps full-size px -> pixels' px."""

    pixels: RGBImage
    width: int
    height: int

    @property
    def scale(self) -> float:
        return float(self.pixels.shape[1]) / self.width


# Upright (width, height) -> the smallest scale of the full size the caller can use.
ScaleRule = Callable[[int, int], float]
REDUCED_FACTORS = (8, 4, 2)


def decode_image(data: bytes, max_pixels: int, min_scale: ScaleRule | None = None) -> DecodedImage:
    """Decode after checking the header; grayscale, alpha, 16-bit and CMYK become 8-bit RGB.

    With ``min_scale``, a JPEG decodes at the smallest of 1/8, 1/4, 1/2 that is at least
    ``min_scale(width, height)``; without it, or when none is, at full size.
    """
    header = probe(data, max_pixels)
    upright = (header.height, header.width) if header.orientation >= 5 else (header.width, header.height)
    factor = 1
    if min_scale is not None:
        wanted = min_scale(*upright)
        factor = next((k for k in REDUCED_FACTORS if 1 / k >= wanted), 1)
    pixels = _decode_jpeg(data, header, factor) if header.format in {"JPEG", "MPO"} else None
    if pixels is None:
        pixels = _decode_full(data, header, max_pixels)
    check_pixels(pixels.shape[1], pixels.shape[0], max_pixels, "decoded image")
    return DecodedImage(pixels, *upright)


def _decode_jpeg(data: bytes, header: ImageHeader, factor: int) -> RGBImage | None:
    try:
        pixels = simplejpeg.decode_jpeg(
            data,
            colorspace="RGB",
            min_width=math.ceil(header.width / factor),
            min_height=math.ceil(header.height / factor),
        )
    except ValueError:  # CMYK, corrupt or truncated: the general path decides
        return None
    return np.ascontiguousarray(_upright(np.asarray(pixels, np.uint8), header.orientation))


def _decode_full(data: bytes, header: ImageHeader, max_pixels: int) -> RGBImage:
    # OpenCV picks its decoder by the same magic bytes the gate checked (the accepted formats'
    # signatures do not overlap); GIF it does not read, MPO it would read past the first frame.
    bgr = None
    if header.format not in {"GIF", "MPO"}:
        try:
            # IMREAD_COLOR converts to 8-bit BGR and applies EXIF orientation.
            bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:  # its own limits or a corrupt file: Pillow decides
            log.debug("OpenCV could not decode a %s image", header.format, exc_info=True)
    if bgr is not None:
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return _decode_with_pillow(data, header, max_pixels)


def _decode_with_pillow(data: bytes, header: ImageHeader, max_pixels: int) -> RGBImage:
    """Fallback for what OpenCV cannot read (first frame of animations, exotic modes)."""
    try:
        with Image.open(io.BytesIO(data), formats=PILLOW_OPENERS) as image:
            frame = next(iter(ImageSequence.Iterator(image)))
            frame.load()
            # The decoded size, before the pixels are converted and kept.
            check_pixels(frame.width, frame.height, max_pixels, "decoded image")
            rgb = ImageOps.exif_transpose(frame.convert("RGB"))
            return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(f"image has more pixels than max_image_pixels={max_pixels}") from exc
    except (OSError, ValueError, SyntaxError, StopIteration) as exc:
        log.info("a %s image could not be decoded: %s", header.format, exc)
        raise InvalidImage(f"image could not be decoded as {header.format}") from exc
