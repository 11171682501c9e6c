"""Public limits and the checking of the keyword options of the loaders.

:func:`_check_options` is the single place that validates the options (and holds their
defaults) for :func:`load_image`, :func:`load_array` and :func:`image_size`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
from PIL import ImageColor

from ..errors import BioresConfigError, BioresImageError
from ._messages import _fail

#: Default pixel limit (width * height): twice Pillow's default ``MAX_IMAGE_PIXELS``, i.e. the
#: size at which Pillow itself raises ``DecompressionBombError``.
DEFAULT_MAX_PIXELS = 178_956_970
#: An unlabelled axis no longer than this is taken as a channel axis (docs/image_loading.md).
MAX_GUESSED_CHANNELS = 8
#: When both ends of a 3-D array or tensor are short, the end that is at most this long wins
#: over the library's convention (numpy: last, torch: first) if the other end is longer.
_SURE_CHANNELS = 4
#: A TIFF series (all planes and channels together) may hold at most this many times
#: ``max_pixels`` elements.
MAX_STACK_FACTOR = 64

_PROJECTIONS = ("max", "mean", "first")
_NORMALIZE_MODES = ("auto", "minmax", "percentile", "none", None)
#: What happens to NaN and +-inf in float images (docs/image_loading.md).
_NONFINITE_MODES = ("error", "zero", "clip")


class ImageOptionError(BioresImageError, BioresConfigError):
    """An option given to :func:`load_image` / :func:`load_array` is invalid."""


class _LoadOptions(TypedDict, total=False):
    """Keyword options shared by :func:`load_image` and :func:`load_array`.

    Their defaults are those of :func:`_check_options`.
    """

    channels: int | Sequence[int] | None
    projection: str
    normalize: str | None
    percentiles: tuple[float, float]
    max_pixels: int | None
    background: tuple[int, int, int] | int | str
    exif_transpose: bool
    nonfinite: str
    frame: int | None
    window: tuple[float, float] | None
    mpp: float | None
    region: tuple[int, int, int, int] | None


_OPTION_NAMES = frozenset(_LoadOptions.__annotations__)


@dataclass(frozen=True)
class _Options:
    channels: tuple[int, ...] | None
    projection: str
    normalize: str | None
    percentiles: tuple[float, float]
    max_pixels: int | None
    background: tuple[int, int, int]
    exif_transpose: bool
    nonfinite: str = "error"
    frame: int | None = None  # DICOM multi-frame: which frame (None: the middle one)
    window: tuple[float, float] | None = None  # DICOM (center, width) override
    mpp: float | None = None  # target pixel size in micrometres per pixel (never finer than stored)
    region: tuple[int, int, int, int] | None = None  # (x, y, w, h) in base-level pixels


def _check_options(
    name: str,
    *,
    allow_raw: bool,
    rgb_output: bool,
    channels: Any = None,
    projection: Any = "max",
    normalize: Any = "auto",
    percentiles: Any = (0.5, 99.5),
    max_pixels: Any = DEFAULT_MAX_PIXELS,
    background: Any = (255, 255, 255),
    exif_transpose: Any = True,
    nonfinite: Any = "error",
    frame: Any = None,
    window: Any = None,
    mpp: Any = None,
    region: Any = None,
) -> _Options:
    def bad(problem: str) -> ImageOptionError:
        return _fail(name, problem, ImageOptionError)  # type: ignore[return-value]

    # channels
    sel: tuple[int, ...] | None
    if channels is None:
        sel = None
    else:
        items: Any = channels
        if isinstance(channels, (int, np.integer)) and not isinstance(channels, (bool, np.bool_)):
            items = (channels,)
        if isinstance(items, (str, bytes)) or not isinstance(items, (Sequence, range, np.ndarray)):
            raise bad(f"channels must be None, an int or a sequence of ints, got {type(channels).__name__}")
        sel_list = []
        for idx in list(np.asarray(items).ravel()) if isinstance(items, np.ndarray) else list(items):
            if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)):
                raise bad(f"channel indices must be ints, got {idx!r}")
            if idx < 0:
                raise bad(f"channel indices must be >= 0, got {int(idx)}")
            sel_list.append(int(idx))
        if not sel_list:
            raise bad("channels selects no channel (empty selection)")
        if rgb_output and len(sel_list) > 3:
            raise bad(f"too many channels selected ({len(sel_list)}: {sel_list}); at most 3 can be mapped to RGB")
        sel = tuple(sel_list)

    if projection not in _PROJECTIONS:
        raise bad(f"projection must be one of 'max', 'mean', 'first', got {projection!r}")

    allowed = _NORMALIZE_MODES + (("raw",) if allow_raw else ())
    if normalize not in allowed:
        names = ", ".join(repr(m) for m in allowed)
        raise bad(f"normalize must be one of {names}, got {normalize!r}")

    try:
        lo, hi = (float(p) for p in percentiles)
    except Exception:  # noqa: BLE001 - any malformed value is an option error
        raise bad(f"percentiles must be two numbers (low, high), got {percentiles!r}") from None
    if not (0.0 <= lo < hi <= 100.0):
        raise bad(f"percentiles must satisfy 0 <= low < high <= 100, got ({lo}, {hi})")

    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels <= 0:
            raise bad(f"max_pixels must be a positive int or None, got {max_pixels!r}")
        max_pixels = int(max_pixels)

    bg = _check_background(background)
    if bg is None:
        raise bad(
            f"background must be an RGB triple of ints in 0..255, a gray int or a colour name, got {background!r}"
        )

    if nonfinite not in _NONFINITE_MODES:
        raise bad(f"nonfinite must be one of 'error', 'zero', 'clip', got {nonfinite!r}")

    return _Options(
        sel,
        projection,
        normalize,
        (lo, hi),
        max_pixels,
        bg,
        bool(exif_transpose),
        nonfinite,
        *_check_physical(bad, frame, window, mpp, region),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, (float, np.floating)) and math.isfinite(value))


def _check_physical(bad: Any, frame: Any, window: Any, mpp: Any, region: Any) -> tuple[Any, ...]:
    """``frame=``, ``window=``, ``mpp=`` and ``region=`` (docs/image_loading.md)."""
    if frame is not None and (not _is_int(frame) or frame < 0):
        raise bad(f"frame must be None or an int >= 0, got {frame!r}")
    win = None
    if window is not None:
        items = list(window) if isinstance(window, (tuple, list)) else []
        if len(items) != 2 or not all(_is_number(v) for v in items) or not float(items[1]) >= 1.0:
            raise bad(f"window must be (center, width) with width >= 1, got {window!r}")
        win = (float(items[0]), float(items[1]))
    if mpp is not None:
        if not _is_number(mpp) or not float(mpp) > 0:
            raise bad(f"mpp must be a positive number of micrometres per pixel, got {mpp!r}")
        mpp = float(mpp)
    box = None
    if region is not None:
        items = list(region) if isinstance(region, (tuple, list)) else []
        if len(items) != 4 or not all(_is_int(v) for v in items):
            raise bad(f"region must be (x, y, width, height) in ints, got {region!r}")
        x, y, w, h = (int(v) for v in items)
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise bad(f"region must have x, y >= 0 and width, height > 0, got {tuple(items)}")
        box = (x, y, w, h)
    return (None if frame is None else int(frame)), win, mpp, box


def _check_background(background: Any) -> tuple[int, int, int] | None:
    if isinstance(background, str):
        try:
            rgb = ImageColor.getrgb(background)
        except ValueError:
            return None
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    if isinstance(background, (int, np.integer)) and not isinstance(background, bool):
        values = [background] * 3
    else:
        try:
            values = list(background)
        except TypeError:
            return None
    if len(values) != 3:
        return None
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 255:
            return None
        out.append(int(v))
    return (out[0], out[1], out[2])
