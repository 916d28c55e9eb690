"""Image input checks that both sides run: base64 decoding and header probing before decode."""

from __future__ import annotations

import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from shared.errors import InvalidImage, LimitExceeded

_DATA_URL = re.compile(rb"^data:[\w/+.-]*;base64,")
_WHITESPACE = b" \t\n\r\f\v"  # what base64 line-wrapping may add; deleted in one C pass


EXIF_ORIENTATION = 0x0112
_EXIF_FORMATS = frozenset({"JPEG", "MPO"})


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What the header says: the format, the stored size, and the EXIF orientation (1 = upright)."""

    format: str
    width: int
    height: int
    orientation: int = 1


def decode_base64(text: str, max_bytes: int) -> bytes:
    """Accept plain base64, with whitespace or a ``data:`` URL prefix; reject anything else."""
    raw = text.encode("ascii", errors="replace")
    raw = _DATA_URL.sub(b"", raw, count=1)
    raw = raw.translate(None, _WHITESPACE)
    # 4 base64 characters carry 3 bytes: refuse oversized input before decoding it.
    if len(raw) // 4 * 3 > max_bytes + 2:
        raise LimitExceeded(f"image is larger than max_image_bytes={max_bytes}")
    try:
        data = binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"not valid base64: {exc}") from exc
    if not data:
        raise InvalidImage("empty image")
    if len(data) > max_bytes:
        raise LimitExceeded(f"image is larger than max_image_bytes={max_bytes}")
    return data


def _orientation(image: Image.Image) -> int:
    """EXIF orientation, 1 (as stored) when absent or unreadable: broken metadata must not
    fail an image whose pixels decode."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # any parser error in optional metadata
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def probe(data: bytes, max_pixels: int) -> ImageHeader:
    """Read format and size from the header only, so decompression bombs never get decoded."""
    if not data:
        raise InvalidImage("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow warns about corrupt EXIF blocks of user images; _orientation() then falls back
            # to upright, which is the answer, so the warning would only be noise in the logs.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")
            with Image.open(io.BytesIO(data)) as image:
                # JPEG's EXIF block was read with the header; other formats' decoders turn
                # their pixels themselves (reading their EXIF here would read past the header).
                orientation = _orientation(image) if image.format in _EXIF_FORMATS else 1
                header = ImageHeader(
                    image.format or "unknown",
                    image.width,
                    image.height,
                    orientation,
                )
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(f"image has more pixels than max_image_pixels={max_pixels}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage("not a recognised image format") from exc
    if header.width < 1 or header.height < 1:
        raise InvalidImage(f"image has no pixels ({header.width}x{header.height})")
    if header.width * header.height > max_pixels:
        raise LimitExceeded(
            f"image is {header.width}x{header.height} = {header.width * header.height} pixels, "
            f"more than max_image_pixels={max_pixels}"
        )
    return header
