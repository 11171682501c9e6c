"""Intensity steps: channel selection, alpha compositing, normalisation, RGB mapping.

Every step works on ``H x W x C`` arrays; :func:`_normalize` turns any dtype into
``uint8`` per channel.
"""

from __future__ import annotations

import math

import numpy as np

from ._messages import _fail

_PERCENTILE_SAMPLE = 1 << 22  # pixels per channel above which percentiles use a subsample


def _select(name: str, arr: np.ndarray, channels: tuple[int, ...] | None) -> np.ndarray:
    if channels is None:
        return arr
    n = arr.shape[2]
    bad = [i for i in channels if i >= n]
    if bad:
        raise _fail(
            name,
            f"channel index {bad[0]} out of range: the image has {n} channel{'s' if n != 1 else ''} (valid 0..{n - 1})",
        )
    if list(channels) == list(range(n)):
        return arr
    return arr[:, :, list(channels)]


def _to_alpha_u8(alpha: np.ndarray) -> np.ndarray:
    if alpha.dtype == np.uint8:
        return alpha
    if alpha.dtype == bool:
        return alpha.astype(np.uint8) * 255
    if alpha.dtype.kind == "f":
        a = np.nan_to_num(alpha.astype(np.float32), nan=1.0, posinf=1.0, neginf=0.0)
        return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    info = np.iinfo(alpha.dtype)
    a = np.clip(alpha.astype(np.float64), 0, info.max) / info.max
    return np.rint(a * 255.0).astype(np.uint8)


def _composite(colour: np.ndarray, alpha: np.ndarray, bg: tuple[int, int, int], premultiplied: bool) -> np.ndarray:
    """``colour`` HxWx(1|3) uint8, ``alpha`` HxW uint8 -> HxWx3 uint8 over ``bg``."""
    if colour.shape[2] == 1:
        colour = np.broadcast_to(colour, colour.shape[:2] + (3,))
    a = alpha.astype(np.uint16)[:, :, None]
    bgv = np.asarray(bg, dtype=np.uint16)
    inv = 255 - a
    if premultiplied:
        out = colour.astype(np.uint16) + (bgv * inv + 127) // 255
    else:
        out = (colour.astype(np.uint16) * a + bgv * inv + 127) // 255
    return np.minimum(out, 255).astype(np.uint8)


def _nonfinite(name: str, arr: np.ndarray, mode: str) -> np.ndarray:
    """Apply the ``nonfinite`` rule to float data: ``"error"`` raises, ``"zero"`` maps to 0.0.

    ``"clip"`` returns the data unchanged: the per-channel steps map NaN / -inf to the low
    end and +inf to the high end of the range.
    """
    if arr.dtype.kind != "f":
        return arr
    finite = np.isfinite(arr)
    if finite.all():
        return arr
    if mode == "error":
        bad = int(finite.size - np.count_nonzero(finite))
        raise _fail(
            name,
            f"{bad} non-finite pixel value{'s' if bad != 1 else ''} (NaN or inf); "
            "pass nonfinite='zero' or nonfinite='clip' to map them",
        )
    if mode == "zero":
        return np.where(finite, arr, arr.dtype.type(0))
    return arr


def _clip_raw(name: str, arr: np.ndarray) -> np.ndarray:
    """``nonfinite="clip"`` for raw output: NaN / -inf -> channel minimum, +inf -> maximum."""
    if np.isfinite(arr).all():
        return arr
    out = arr.copy()
    for c in range(arr.shape[2]):
        ch = out[:, :, c]
        values = ch[np.isfinite(ch)]
        if values.size == 0:
            raise _fail(name, "image has no finite pixel values (all NaN or inf)")
        lo, hi = float(values.min()), float(values.max())
        out[:, :, c] = np.nan_to_num(ch, nan=lo, posinf=hi, neginf=lo)
    return out


def _normalize(name: str, arr: np.ndarray, mode: str | None, percentiles: tuple[float, float]) -> np.ndarray:
    """Per-channel intensity normalisation of ``HxWxC`` data to uint8 (uint8 is untouched)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * np.uint8(255)
    is_float = arr.dtype.kind == "f"
    out = np.empty(arr.shape, dtype=np.uint8)
    for c in range(arr.shape[2]):
        out[:, :, c] = _normalize_channel(name, arr[:, :, c], mode, percentiles, is_float)
    return out


def _normalize_channel(
    name: str,
    ch: np.ndarray,
    mode: str | None,
    percentiles: tuple[float, float],
    is_float: bool,
) -> np.ndarray:
    finite: np.ndarray | None = None
    if is_float:
        mask = np.isfinite(ch)
        if not mask.all():
            if not mask.any():
                raise _fail(name, "image has no finite pixel values (all NaN or inf)")
            finite = ch[mask]
    values = ch if finite is None else finite

    if mode == "auto":
        if is_float:
            mode = "unit" if values.min() >= 0.0 and values.max() <= 1.0 else "percentile"
        else:
            mode = "percentile"
    elif mode in ("none", None):
        mode = "unit" if is_float else "fixed"

    if mode in ("unit", "fixed"):
        return _fixed_scale(ch)
    lo = hi = 0.0
    if mode == "percentile":
        sample = values
        if sample.size > _PERCENTILE_SAMPLE:
            step = math.ceil(math.sqrt(sample.size / _PERCENTILE_SAMPLE))
            sample = sample[::step, ::step] if sample.ndim == 2 else sample[:: step * step]
        lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    if mode == "minmax" or not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:  # a constant channel keeps its level on the fixed scale
        return _fixed_scale(ch)
    x = ch.astype(np.float32 if ch.dtype.itemsize <= (4 if is_float else 2) else np.float64)
    if finite is not None:
        x = np.nan_to_num(x, nan=lo, posinf=hi, neginf=lo)
    x = np.clip(x, lo, hi)
    x -= lo
    x *= 255.0 / (hi - lo)
    return np.rint(x).astype(np.uint8)


def _fixed_scale(ch: np.ndarray) -> np.ndarray:
    """``normalize="none"``: floats clipped to [0, 1] (NaN, -inf -> 0, +inf -> 1) times 255,
    uint16 divided by 257, other integers' whole dtype range onto 0..255."""
    if ch.dtype.kind == "f":
        x = np.nan_to_num(ch.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
        return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    if ch.dtype == np.uint16:  # x / 257, rounded, through a lookup table
        return _uint16_lut()[ch]
    info = np.iinfo(ch.dtype)
    scaled = (ch.astype(np.float64) - float(info.min)) * (255.0 / (float(info.max) - float(info.min)))
    return np.rint(scaled).astype(np.uint8)


_LUT16: np.ndarray | None = None


def _uint16_lut() -> np.ndarray:
    global _LUT16
    if _LUT16 is None:
        full = np.arange(65536, dtype=np.uint32)
        _LUT16 = ((full * 255 + 32767) // 65535).astype(np.uint8)
    return _LUT16


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    c = arr.shape[2]
    if c == 3:
        return arr
    if c == 1:
        return np.repeat(arr, 3, axis=2)
    if c == 2:
        return np.concatenate([arr, np.zeros(arr.shape[:2] + (1,), dtype=arr.dtype)], axis=2)
    return arr[:, :, :3]
