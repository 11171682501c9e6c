"""The bad and odd image files ``test_bad_inputs`` feeds every entry point, generated in the session."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from image_io_helpers import fake_png_header, fake_tiff_header, pil_bytes, tiff_bytes
from PIL import Image

RNG = np.random.default_rng(7)


def smooth(h: int, w: int, c: int = 3) -> np.ndarray:
    small = RNG.integers(0, 256, (h // 8 + 2, w // 8 + 2, c), dtype=np.uint8)
    mode = "RGB" if c == 3 else "L"
    big = Image.fromarray(small if c == 3 else small[..., 0], mode).resize((w, h), Image.BICUBIC)
    return np.asarray(big).reshape(h, w, c)


RGB = smooth(180, 240)  # wider than SWEEP_LEVEL, so the sweep really resizes
GRAY = smooth(120, 90, 1)[..., 0]
U16_BINARY = np.where(np.arange(64 * 48).reshape(48, 64) % 3 == 0, 65535, 0).astype(np.uint16)
U8_BINARY = np.where(U16_BINARY > 0, 255, 0).astype(np.uint8)
RAMP01 = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(30, 40)


def rgb3(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def with_exif(im: Image.Image, fmt: str, orientation: int, **kw: Any) -> bytes:
    exif = im.getexif()
    exif[0x0112] = orientation
    return pil_bytes(im, fmt, exif=exif.tobytes(), **kw)


def decoded(data: bytes) -> np.ndarray:
    """What Pillow itself decodes (no biores code): the reference for lossy or converted files."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def flip_bit(data: bytes, where: float) -> bytes:
    out = bytearray(data)
    out[int(len(out) * where)] ^= 0x10
    return bytes(out)


def over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha compositing onto white with uint8 rounding (docs/image_loading.md)."""
    a = alpha.astype(np.uint16)[..., None]
    return ((colour.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def build_files() -> dict[str, bytes]:
    png, jpg = pil_bytes(Image.fromarray(RGB)), pil_bytes(Image.fromarray(RGB), "JPEG", quality=92)
    tif = tiff_bytes(RGB, photometric="rgb")
    gray_png = pil_bytes(Image.fromarray(GRAY))
    pal = Image.fromarray(RGB).convert("P", palette=Image.ADAPTIVE, colors=16)
    la = np.stack([GRAY, np.tile(np.arange(90, dtype=np.uint8) * 2, (120, 1))], axis=-1)
    files = {
        "rgb.png": png,
        "rgb.jpg": jpg,
        "rgb.tif": tif,
        "rgb.bmp": pil_bytes(Image.fromarray(RGB), "BMP"),
        "gray.png": gray_png,
        "palette.png": pil_bytes(pal),
        "palette_trns.png": pil_bytes(pal, transparency=0),
        "la.png": pil_bytes(Image.fromarray(la, "LA")),
        "bilevel.png": pil_bytes(Image.fromarray(U8_BINARY).convert("1")),
        "cmyk.jpg": pil_bytes(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=95),
        "u16_binary.png": pil_bytes(Image.fromarray(U16_BINARY)),
        "u16_const40000.png": pil_bytes(Image.fromarray(np.full((20, 30), 40000, np.uint16))),
        "float01.tif": tiff_bytes(RAMP01),
        "float_nan.tif": tiff_bytes(np.where(RAMP01 > 0.5, np.nan, RAMP01).astype(np.float32)),
        "zstack.tif": tiff_bytes(np.stack([U8_BINARY, U8_BINARY[::-1]]), metadata={"axes": "ZYX"}),
        "one_px.png": pil_bytes(Image.fromarray(np.array([[[10, 200, 30]]], np.uint8))),
        "row_1x3000.png": pil_bytes(Image.fromarray(np.tile(RGB[:1, :1], (1, 3000, 1)))),
        "thin_4x800.png": pil_bytes(Image.fromarray(smooth(4, 800))),
        "exif6.jpg": with_exif(Image.fromarray(RGB), "JPEG", 6, quality=92),
        "exif8.png": with_exif(Image.fromarray(RGB), "PNG", 8),
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpg[: len(jpg) * 2 // 3],
        "truncated.tif": tif[: len(tif) // 2],
        "truncated_gray.png": gray_png[: len(gray_png) // 2],
        "bitflip.png": flip_bit(png, 0.6),
        "random.bin": RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.png": b"",
        "text.png": b"this is not an image, just text\n" * 20,
        "bomb.png": fake_png_header(100_000, 100_000),
        "bomb.tif": fake_tiff_header(60_000, 60_000),
        "zero_width.png": fake_png_header(0, 10),
    }
    return files
