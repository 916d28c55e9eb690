"""The one image gate that both sides run: base64 decoding, then the header probe before decode.

The probe refuses, from the header alone: formats outside ``ACCEPTED_FORMATS`` (Pillow reads
some twenty more; ICO and ICNS are containers whose directory may lie about the picture inside),
and declared sizes over ``max_pixels``. The worker's decoder (worker/imaging/decode.py) opens
with the same allow-list and checks the decoded size again.
"""

from __future__ import annotations

import binascii
import io
import logging
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from shared.errors import InvalidImage, LimitExceeded

_DATA_URL = re.compile(rb"^data:[\w/+.-]*;base64,")
_WHITESPACE = b" \t\n\r\f\v"  # what base64 line-wrapping may add; deleted in one C pass


EXIF_ORIENTATION = 0x0112
_EXIF_FORMATS = frozenset({"JPEG", "MPO"})

# Pillow's format ids of the only formats opened, in Pillow's spelling (WEBP is WebP; MPO is a
# JPEG with more pictures after the first, as cameras write). Checked on the header's magic bytes
# before any plugin parses the file: every other Pillow format (ICO, ICNS, PSD, TGA, EPS, ...) is
# refused with a 422, so no plugin outside this list ever runs on client bytes.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO")
_ACCEPTED_TEXT = ", ".join(ACCEPTED_FORMATS)
# What Image.open is told to try: Pillow opens MPO through its JPEG plugin, which answers MPO.
PILLOW_OPENERS: tuple[str, ...] = tuple(name for name in ACCEPTED_FORMATS if name != "MPO")

log = logging.getLogger("facerest.images")


def configure_pillow(max_pixels: int) -> None:
    """Set Pillow's decompression-bomb limit from the settings, once, at process start.

    The one process-global write of the image code (API app factory, worker loader): Pillow's bomb
    check reads only the module global ``Image.MAX_IMAGE_PIXELS``, with no per-call argument. Our
    own checks take ``max_pixels`` as an argument on every call and refuse above it; Pillow's
    global, which errors only above twice its value, is the backstop inside Pillow's own code.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels


def sniff_format(data: bytes) -> str | None:
    """The Pillow format id whose magic bytes ``data`` starts with, without running any parser."""
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        if accept is None:
            continue
        try:
            verdict = accept(prefix)
        except Exception:  # some plugins' checks assume a longer prefix (struct.error): no match
            continue
        if verdict and not isinstance(verdict, str):  # a str is Pillow's "this, but broken"
            return name
    return None


def _refusal(data: bytes) -> InvalidImage:
    """Why Pillow, held to the allow-list, could not open ``data``: a format we do not accept,
    or not an image."""
    name = sniff_format(data)
    if name is None:
        return InvalidImage("not a recognised image format")
    if name in ACCEPTED_FORMATS:
        return InvalidImage(f"not a readable {name} image")
    return InvalidImage(f"format {name} is not accepted; accepted: {_ACCEPTED_TEXT}")


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
    """Read format and size from the header only, so decompression bombs never get decoded.

    Raises InvalidImage for a format outside ``ACCEPTED_FORMATS`` or an unreadable header, and
    LimitExceeded when the declared size holds more than ``max_pixels``.
    """
    if not data:
        raise InvalidImage("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow warns about corrupt EXIF blocks of user images; _orientation() then falls back
            # to upright, which is the answer, so the warning would only be noise in the logs.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")
            with Image.open(io.BytesIO(data), formats=PILLOW_OPENERS) as image:
                # JPEG's EXIF block was read with the header; other formats' decoders turn
                # their pixels themselves (reading their EXIF here would read past the header).
                if image.format not in ACCEPTED_FORMATS:  # a plugin answering another format
                    raise InvalidImage(f"format {image.format} is not accepted; accepted: {_ACCEPTED_TEXT}")
                orientation = _orientation(image) if image.format in _EXIF_FORMATS else 1
                header = ImageHeader(
                    image.format or "unknown",
                    image.width,
                    image.height,
                    orientation,
                )
    except InvalidImage:
        raise
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(f"image has more pixels than max_image_pixels={max_pixels}") from exc
    except UnidentifiedImageError as exc:
        raise _refusal(data) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage("not a recognised image format") from exc
    except Exception as exc:  # a parser bug on hostile bytes: the client gets no library text
        log.warning("image header probe failed", exc_info=True)
        raise InvalidImage("image header could not be read") from exc
    if header.width < 1 or header.height < 1:
        raise InvalidImage(f"image has no pixels ({header.width}x{header.height})")
    check_pixels(header.width, header.height, max_pixels)
    return header


def check_pixels(width: int, height: int, max_pixels: int, what: str = "image") -> None:
    """Refuse a size over ``max_pixels``: the header's declared size, then the decoded one."""
    if width * height > max_pixels:
        raise LimitExceeded(
            f"{what} is {width}x{height} = {width * height} pixels, more than max_image_pixels={max_pixels}"
        )


def image_label(index: int, data_count: int) -> str:
    """Where image ``index`` of a request came from: images.data first, then images.urls."""
    if index < data_count:
        return f"images.data[{index}]"
    return f"images.urls[{index - data_count}]"
