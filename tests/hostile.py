"""Hostile image files built by hand: containers whose directory lies, bomb headers, many frames.

Pillow cannot write most of these (``Image.save(..., "ICO")`` stops at 256x256), so they are
assembled from their format's bytes; each builder is cheap enough to run at test import.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def one_colour_png(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of zeros: 10000x10000 compresses to about 100 KB."""
    row = bytes(width + 1)  # filter byte 0, then the row's zeros
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width`` x ``height``, with no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")


def ico_wrapping(payload: bytes) -> bytes:
    """An ICO whose one directory entry says 256x256 and points at ``payload`` (a PNG)."""
    header = struct.pack("<HHH", 0, 1, 1)
    # width 0 and height 0 mean 256; 1 plane, 32 bits per pixel; the payload right after.
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(payload), 6 + 16)
    return header + entry + payload


def icns_wrapping(payload: bytes, kind: bytes = b"ic10") -> bytes:
    """An ICNS with one entry (``ic10`` is the 1024x1024 slot) holding ``payload``."""
    entry = kind + struct.pack(">I", 8 + len(payload)) + payload
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


def icns_bomb() -> bytes:
    """A tiny ICNS whose PNG entry claims 30000x30000: Pillow raises its bomb error on it."""
    return icns_wrapping(png_header_only(30000, 30000))


def tiff_bomb_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A little-endian TIFF whose only IFD says ``width`` x ``height`` 8-bit grayscale, one strip."""
    tags = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample, SHORT
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # PhotometricInterpretation: black is zero
        (273, 4, 1, 8 + 2 + 12 * 8 + 4),  # StripOffsets: right after the IFD
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts: far fewer than declared
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(16)


def gif_with_frames(first: Image.Image, frames: int) -> bytes:
    """An animated GIF: ``first``, then ``frames - 1`` frames that each change one pixel."""
    base = first.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    rest = []
    for i in range(1, frames):
        frame = base.copy()
        frame.putpixel((i % base.width, 0), i % 2)
        rest.append(frame)
    buffer = io.BytesIO()
    base.save(buffer, "GIF", save_all=True, append_images=rest, duration=20, loop=0)
    return buffer.getvalue()
