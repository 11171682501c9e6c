"""Numpy input and the array steps shared with TIFF reading.

The shape of an unlabelled numpy array decides its layout; stack axes are projected and
EXIF/TIFF orientations are applied to ``H x W x C`` arrays here.
"""

from __future__ import annotations

import numpy as np

from ._messages import _fail
from .guards import _check_size
from .options import _SURE_CHANNELS, MAX_GUESSED_CHANNELS, _Options
from .sources import _Decoded, _Source


def _array_layout(name: str, arr: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``(array, stack_axes)`` with the array ordered as [stack...] + (H, W, C)."""
    if arr.ndim == 2:
        return arr[:, :, None], ()
    if arr.ndim == 3:
        first, last = arr.shape[0], arr.shape[2]
        if first <= MAX_GUESSED_CHANNELS and (last > MAX_GUESSED_CHANNELS or first <= _SURE_CHANNELS < last):
            return np.moveaxis(arr, 0, -1), ()
        if last <= MAX_GUESSED_CHANNELS:
            return arr, ()
        return arr[:, :, :, None], (0,)
    if arr.ndim == 4:
        if arr.shape[3] <= MAX_GUESSED_CHANNELS:
            return arr, (0,)
        return np.moveaxis(arr, 1, -1), (0,)
    raise _fail(
        name,
        f"numpy array must have 2 (HxW), 3 (HxWxC, CxHxW or ZxHxW) or 4 (ZxCxHxW, ZxHxWxC) "
        f"dimensions, got ndim={arr.ndim} with shape {arr.shape}",
    )


def _check_array_dtype(name: str, arr: np.ndarray, *, convert: bool = True) -> np.ndarray:
    kind = arr.dtype.kind
    if kind == "c":
        raise _fail(
            name,
            f"complex numpy arrays are not images (dtype {arr.dtype}); pass abs() or real part",
        )
    if kind not in "buif":
        raise _fail(
            name,
            f"unsupported numpy dtype {arr.dtype} (expected bool, integer or float)",
        )
    if not convert:
        return arr
    if kind == "f" and arr.dtype.itemsize < 4:
        arr = arr.astype(np.float32)
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _laid_out(src: _Source, arr: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    return (arr, ()) if src.hwc else _array_layout(src.name, arr)


def _array_hw(src: _Source) -> tuple[int, int]:
    assert src.array is not None
    laid, stack = _laid_out(src, _check_array_dtype(src.name, src.array, convert=False))
    off = len(stack)
    return int(laid.shape[off]), int(laid.shape[off + 1])


def _array_decode(src: _Source, opts: _Options) -> _Decoded:
    assert src.array is not None
    name, arr = src.name, _check_array_dtype(src.name, src.array)
    laid, stack = _laid_out(src, arr)
    off = len(stack)
    h, w, c = laid.shape[off], laid.shape[off + 1], laid.shape[off + 2]
    _check_size(name, w, h, opts.max_pixels)
    if c == 0 or laid.size == 0:
        raise _fail(name, f"zero-sized image (array shape {arr.shape})")
    if stack:
        laid = _project(laid, stack, opts.projection)
    return _Decoded(array=laid)


def _project(data: np.ndarray, axes: tuple[int, ...], how: str) -> np.ndarray:
    if how == "first":
        index = tuple(0 if i in axes else slice(None) for i in range(data.ndim))
        return data[index]
    if how == "max":
        if data.dtype.kind == "f":  # fmax ignores NaN where any plane is finite
            return np.fmax.reduce(data, axis=axes)
        return np.max(data, axis=axes)
    # mean: keep the dtype so that the intensity rules of the source type still apply
    if data.dtype.kind == "f":
        return np.mean(data, axis=axes, dtype=np.float64).astype(data.dtype)
    if data.dtype == bool:
        return np.mean(data, axis=axes) >= 0.5
    return np.rint(np.mean(data, axis=axes, dtype=np.float64)).astype(data.dtype)


_ORIENT_OPS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _orient_array(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation value (as ``ImageOps.exif_transpose`` does) to HxW[xC]."""
    op = _ORIENT_OPS.get(orientation)
    return arr if op is None else op(arr)
