"""Reading with Pillow: every format except the TIFF files that tifffile decodes.

8-bit images without alpha stay PIL images (the fast path); alpha, 16-bit, 32-bit and
float images become ``H x W x C`` arrays.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import BioresError, BioresImageError
from ._messages import _exc_text, _fail, _one_line
from .guards import _check_size, _strict_truncation
from .options import _Options
from .sources import _Decoded

_ORIENTATION_TAG = 0x0112
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_CLOSED = "the PIL image is closed (Image.close() was called); copy or load it before closing"
_FILE_CLOSED = (
    "the file of the lazily opened PIL image was closed before its pixels were read "
    "(load() it inside the with block, or pass the path)"
)
# Pillow modes that can go straight to RGB with one convert() (8-bit, no alpha).
_PIL_RGB_MODES = frozenset({"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_PIL_ALPHA_MODES = {
    "LA": "LA",
    "La": "LA",
    "PA": "RGBA",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
}


def _pil_error(name: str, exc: BaseException, *, stage: str) -> BioresImageError:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _fail(name, f"possible decompression bomb ({_one_line(exc)})")
    if isinstance(exc, UnidentifiedImageError):
        return _fail(name, "not a recognised image (corrupt data or unsupported format)")
    if isinstance(exc, MemoryError):
        return _fail(name, "not enough memory to decode the image")
    text = str(exc).lower()
    if isinstance(exc, ValueError) and "closed" in text:
        return _fail(name, _CLOSED if "closed image" in text else _FILE_CLOSED)
    if isinstance(exc, SyntaxError) and "checksum" in text:
        return _fail(name, f"corrupt image data (failed checksum: {_one_line(exc)})")
    if isinstance(exc, EOFError) or "truncated" in text or "broken data stream" in text or "premature end" in text:
        return _fail(name, f"truncated or incomplete image data ({_exc_text(exc)})")
    if stage == "open":
        return _fail(name, f"corrupt image header ({_exc_text(exc)})")
    return _fail(name, f"corrupt image data ({_exc_text(exc)})")


def _pil_orientation_from_header(im: Image.Image) -> int:
    """EXIF orientation without decoding pixels (PNG: only an eXIf chunk before IDAT)."""
    try:
        if im.format == "PNG":
            raw = im.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = im.getexif()
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - broken EXIF never makes the image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _pil_size_orientation(im: Image.Image) -> int:
    """The orientation still to apply to ``im.size`` (Pillow's TIFF reader applies its own)."""
    return 1 if im.format == "TIFF" else _pil_orientation_from_header(im)


def _pil_check_open(name: str, im: Image.Image) -> None:
    """A closed image, or a lazy one whose file is gone, is an error before any decoding."""
    try:
        core = im.im
    except ValueError as exc:  # Pillow's "Operation on closed image"
        raise _fail(name, _CLOSED) from exc
    except AssertionError:  # lazily opened, not loaded yet
        core = None
    if core is None and isinstance(im, ImageFile.ImageFile):
        fp = getattr(im, "fp", None)
        if fp is None or getattr(fp, "closed", False):
            raise _fail(name, _FILE_CLOSED)


def _png_verify(name: str, stream: BinaryIO) -> None:
    """Check the CRC of every PNG chunk (bit flips that zlib would decode silently)."""
    start = stream.tell()
    if stream.read(len(_PNG_MAGIC)) != _PNG_MAGIC:
        stream.seek(start)
        return
    stream.seek(start)
    try:
        with _strict_truncation():
            Image.open(stream).verify()
    except BioresError:
        raise
    except Exception as exc:
        raise _pil_error(name, exc, stage="load") from exc
    finally:
        stream.seek(start)


def _pil_verify_lazy(name: str, im: Image.Image) -> None:
    """:func:`_png_verify` for a PNG opened lazily by the caller (its file is still open)."""
    fp = getattr(im, "fp", None)
    if im.format != "PNG" or not getattr(im, "tile", None) or fp is None:
        return
    try:
        pos = fp.tell()
        fp.seek(0)
    except Exception:  # noqa: BLE001 - an unseekable file is decoded without the CRC pass
        return
    try:
        _png_verify(name, fp)
    finally:
        fp.seek(pos)


def _pil_orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - broken EXIF never makes the image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _pil_open(name: str, stream: BinaryIO) -> Image.Image:
    try:
        with _strict_truncation():
            return Image.open(stream)
    except BioresError:
        raise
    except Exception as exc:  # includes DecompressionBombError / warnings turned into errors
        raise _pil_error(name, exc, stage="open") from exc


def _pil_size(name: str, stream: BinaryIO, opts_max: int | None, exif: bool) -> tuple[int, int]:
    im = _pil_open(name, stream)
    w, h = im.size
    _check_size(name, w, h, opts_max)
    if exif and _pil_size_orientation(im) >= 5:
        w, h = h, w
    return w, h


def _pil_decode(name: str, im: Image.Image, opts: _Options, *, is_input: bool) -> _Decoded:
    w, h = im.size
    _check_size(name, w, h, opts.max_pixels)
    if is_input:
        _pil_check_open(name, im)
        _pil_verify_lazy(name, im)
    try:
        with _strict_truncation():
            im.load()
    except BioresError:
        raise
    except Exception as exc:
        raise _pil_error(name, exc, stage="load") from exc
    try:
        if opts.exif_transpose and _pil_orientation(im) != 1:
            im = ImageOps.exif_transpose(im)
            is_input = False
        return _pil_to_decoded(im, is_input)
    except BioresError:
        raise
    except Exception as exc:
        raise _pil_error(name, exc, stage="load") from exc


def _pil_to_decoded(im: Image.Image, is_input: bool) -> _Decoded:
    mode = im.mode
    has_trns = "transparency" in im.info or (
        mode == "P" and getattr(getattr(im, "palette", None), "mode", "RGB") == "RGBA"
    )
    if mode in _PIL_ALPHA_MODES or (has_trns and mode in ("P", "L", "RGB")):
        target = _PIL_ALPHA_MODES.get(mode) or ("LA" if mode == "L" else "RGBA")
        if mode != target:
            im = im.convert(target)
        return _Decoded(array=_pil_array(im), alpha=True)
    if mode in _PIL_RGB_MODES:
        return _Decoded(pil=im, pil_is_input=is_input)
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _Decoded(array=_pil_array(im))
    return _Decoded(pil=im.convert("RGB"))  # any other mode Pillow knows how to convert


def _pil_array(im: Image.Image) -> np.ndarray:
    arr = np.asarray(im)
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def _pil_rgb_array(dec: _Decoded) -> np.ndarray:
    """Turn the fast-path PIL image into an ``HxWxC`` uint8 array (C = 1 for gray, else 3)."""
    im = dec.pil
    assert im is not None
    if im.mode == "1":
        im = im.convert("L")
    if im.mode == "L":
        return np.asarray(im)[:, :, None]
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)
