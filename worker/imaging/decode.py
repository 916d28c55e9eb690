"""The one decoder: encoded bytes -> RGB uint8 array (H, W, 3), EXIF orientation applied."""

from __future__ import annotations

import io

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, ImageSequence

from shared.errors import InvalidImage
from shared.images import probe

RGBImage = NDArray[np.uint8]


def decode_image(data: bytes, max_pixels: int) -> RGBImage:
    """Decode after checking the header; grayscale, alpha, 16-bit and CMYK become 8-bit RGB."""
    header = probe(data, max_pixels)
    buffer = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR converts to 8-bit BGR and applies EXIF orientation.
    bgr = None if header.format in {"GIF", "MPO"} else cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is not None:
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return _decode_with_pillow(data)


def _decode_with_pillow(data: bytes) -> RGBImage:
    """Fallback for what OpenCV cannot read (first frame of animations, exotic modes)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            frame = next(iter(ImageSequence.Iterator(image)))
            rgb = ImageOps.exif_transpose(frame.convert("RGB"))
            return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    except (OSError, ValueError, SyntaxError, StopIteration) as exc:
        raise InvalidImage(f"image could not be decoded: {exc}") from exc
