"""Reading TIFF files with tifffile, which knows their axes (Z/C/T/S/Y/X).

A compression that tifffile cannot decode without ``imagecodecs`` raises
:class:`_CodecMissing`, so that the pipeline can let Pillow try instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

import numpy as np

from ..errors import BioresError, BioresImageError
from ._messages import _exc_text, _fail
from .guards import _check_size
from .options import MAX_STACK_FACTOR, _Options
from .physical import _tiff_mpp
from .pyramid import _tiff_pyramid
from .sources import _Decoded
from .tiff_layout import _tiff_arrange, _tiff_layout

_T = TypeVar("_T")


class _CodecMissing(Exception):
    pass


def _tiff_orientation(series: Any) -> int:
    try:
        page = series.keyframe if getattr(series, "keyframe", None) is not None else series.pages[0]
        tag = page.tags.get(274)
        value = int(tag.value) if tag is not None else 1
    except Exception:  # noqa: BLE001 - a broken tag never makes the image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _tiff_open(name: str, stream: BinaryIO) -> Any:
    import tifffile

    try:
        return tifffile.TiffFile(stream)
    except BioresError:
        raise
    except Exception as exc:
        raise _tiff_error(name, exc, stage="open") from exc


def _tiff_error(name: str, exc: BaseException, *, stage: str) -> BioresImageError:
    if isinstance(exc, MemoryError):
        return _fail(name, "not enough memory to decode the TIFF image")
    text = str(exc).lower()
    if "failed to read" in text or "truncated" in text or isinstance(exc, EOFError) or "unexpected end" in text:
        return _fail(name, f"truncated or incomplete TIFF data ({_exc_text(exc)})")
    if stage == "open":
        return _fail(name, f"corrupt TIFF header ({_exc_text(exc)})")
    return _fail(name, f"corrupt or unreadable TIFF data ({_exc_text(exc)})")


def _tiff_size(name: str, stream: BinaryIO, max_pixels: int | None, exif: bool) -> tuple[int, int]:
    def size(tf: Any) -> tuple[int, int]:
        series, _axes, _shape, w, h = _tiff_layout(name, tf)
        _check_size(name, w, h, max_pixels)
        if exif and _tiff_orientation(series) >= 5:
            w, h = h, w
        return w, h

    return _with_tiff(name, stream, size, stage="open")


def _tiff_decode(name: str, stream: BinaryIO, opts: _Options) -> _Decoded:
    return _with_tiff(name, stream, lambda tf: _tiff_decode_open(name, tf, opts), stage="read")


def _with_tiff(name: str, stream: BinaryIO, read: Callable[[Any], _T], *, stage: str) -> _T:
    """Open the TIFF in ``stream``, apply ``read`` to it and close it; convert errors."""
    tf = _tiff_open(name, stream)
    try:
        return read(tf)
    except (BioresError, _CodecMissing):
        raise
    except Exception as exc:
        raise _tiff_error(name, exc, stage=stage) from exc
    finally:
        tf.close()


def _tiff_decode_open(name: str, tf: Any, opts: _Options) -> _Decoded:
    if opts.mpp is not None or opts.region is not None:
        return _tiff_pyramid(name, tf, opts)
    series, axes, shape, width, height = _tiff_layout(name, tf)
    levels = len(getattr(series, "levels", None) or ())
    if levels > 1 and opts.max_pixels is not None and width * height > opts.max_pixels:
        raise _fail(
            name,
            f"base level of {width}x{height} = {width * height} pixels exceeds max_pixels={opts.max_pixels}; "
            f"the file is a pyramid of {levels} levels: read a smaller one with mpp= (biores info --mpp)",
        )
    _check_size(name, width, height, opts.max_pixels)
    total = math.prod(shape)
    if opts.max_pixels is not None and total > MAX_STACK_FACTOR * opts.max_pixels:
        raise _fail(
            name,
            f"TIFF series of shape {shape} holds {total} values, more than "
            f"{MAX_STACK_FACTOR} x max_pixels={opts.max_pixels} (possible decompression bomb)",
        )
    page = series.keyframe if getattr(series, "keyframe", None) is not None else series.pages[0]
    try:
        data = series.asarray()
    except (KeyError, ValueError, ImportError, ModuleNotFoundError) as exc:
        if "imagecodecs" in str(exc) or isinstance(exc, ImportError):
            raise _CodecMissing(str(exc)) from exc
        raise
    data = np.asarray(data)
    if data.shape != shape:  # defensive: tifffile should honour series.shape
        raise _fail(
            name,
            f"TIFF data shape {data.shape} does not match its series shape {shape}",
        )
    dec = _tiff_arrange(data, axes, page, opts, _tiff_orientation(series) if opts.exif_transpose else 1)
    dec.mpp = _tiff_mpp(tf, page)
    return dec
