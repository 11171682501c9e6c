"""Inputs built on the fly for the image_io tests: Pillow / tifffile bytes, noise, fake headers; the error check."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from biores_plugin.errors import BioresImageError

RNG = np.random.default_rng(1234)


# ----------------------------------------------------------------------------- helpers


def pil_bytes(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def tiff_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def noise(h: int, w: int, c: int | None = 3) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def fake_png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))


def fake_tiff_header(width: int, height: int) -> bytes:
    """A classic little-endian TIFF whose IFD claims a huge 8-bit grayscale image (16 data bytes)."""
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 0),  # strip offset, patched below
        (277, 3, 1),
        (278, 4, height),
        (279, 4, width * height),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<H2x", value) if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, 1) + packed
    return out + struct.pack("<I", 0) + b"\0" * 16


def assert_error(excinfo: pytest.ExceptionInfo, *phrases: str) -> None:
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, BioresImageError)
    assert "\n" not in msg, msg
    low = msg.lower()
    for phrase in phrases:
        assert phrase.lower() in low, f"{phrase!r} not in {msg!r}"
