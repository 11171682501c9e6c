"""Pyramidal TIFF / OME-TIFF / whole-slide images read at a pixel size (``mpp=``) or in part (``region=``).

The level read is the coarsest one whose pixels are at least as fine as the target; only the
tiles under the region are decoded (single-page tiled levels), and the size guards apply to
that window, not to the slide's nominal size. The window is then resampled exactly onto the
target grid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._messages import _fail
from .guards import _check_size
from .options import MAX_STACK_FACTOR, _Options
from .physical import _check_region, _resample, _target_size, _tiff_mpp
from .sources import _Decoded
from .tiff_layout import _tiff_arrange, _tiff_layout

#: pages decoded by :func:`_read_window` since import, for the tests' and benches' accounting
TILES_READ = {"tiles": 0, "whole_levels": 0}


def _yx(level: Any) -> tuple[int, int]:
    axes = str(level.axes).upper()
    shape = tuple(int(s) for s in level.shape)
    return shape[axes.index("X")], shape[axes.index("Y")]


def _choose_level(levels: list[Any], base_w: int, base_mpp: float, target: float) -> Any:
    """The coarsest level whose pixel size is at most ``target`` µm (the base level at worst)."""
    best, best_w = levels[0], base_w
    for level in levels[1:]:
        width = _yx(level)[0]
        if base_mpp * base_w / width <= target * (1 + 1e-6) and width < best_w:
            best, best_w = level, width
    return best


def _tiff_pyramid(name: str, tf: Any, opts: _Options) -> _Decoded:
    series, _axes, _shape, base_w, base_h = _tiff_layout(name, tf)
    levels = list(getattr(series, "levels", None) or [series])
    region = opts.region or (0, 0, base_w, base_h)
    _check_region(name, region, base_w, base_h)
    x, y, w, h = region
    base_mpp = _tiff_mpp(tf, levels[0].keyframe)
    level, out = levels[0], (w, h)
    if opts.mpp is not None:
        if base_mpp is None:
            raise _fail(
                name,
                f"mpp={opts.mpp:g} needs the slide's physical pixel size, and it declares none "
                "(no OME PhysicalSizeX, SVS MPP or TIFF resolution in cm / inch)",
            )
        out = _target_size(w, h, base_mpp, opts.mpp)
        level = _choose_level(levels, base_w, base_mpp, opts.mpp)
    _check_size(name, out[0], out[1], opts.max_pixels)
    level_w, level_h = _yx(level)
    sx, sy = level_w / base_w, level_h / base_h
    fx0, fy0, fx1, fy1 = x * sx, y * sy, (x + w) * sx, (y + h) * sy
    ix0, iy0 = math.floor(fx0), math.floor(fy0)
    ix1, iy1 = min(math.ceil(fx1), level_w), min(math.ceil(fy1), level_h)
    _check_size(name, ix1 - ix0, iy1 - iy0, opts.max_pixels)  # the guard on what is decoded
    data, level_axes = _read_window(name, level, (ix0, iy0, ix1, iy1), opts)
    dec = _tiff_arrange(data, level_axes, level.keyframe, opts, 1)
    assert dec.array is not None
    box = (fx0 - ix0, fy0 - iy0, fx1 - ix0, fy1 - iy0)
    exact = box == (0.0, 0.0, float(ix1 - ix0), float(iy1 - iy0)) and out == (ix1 - ix0, iy1 - iy0)
    if not exact:
        dec.array = _resample(dec.array, out, box)
    dec.cropped = True
    dec.mpp = None if base_mpp is None else base_mpp * w / out[0]
    return dec


def _read_window(name: str, level: Any, window: tuple[int, int, int, int], opts: _Options) -> tuple[np.ndarray, str]:
    """The pixels of ``level`` inside ``window`` = (x0, y0, x1, y1), with the level's axes."""
    axes = str(level.axes).upper()
    page = level.keyframe
    if len(level.pages) == 1 and page.is_tiled and axes in ("YX", "YXS") and int(page.planarconfig) == 1:
        return _read_tiles(page, window, axes), axes
    total = math.prod(int(s) for s in level.shape)
    if opts.max_pixels is not None and total > MAX_STACK_FACTOR * opts.max_pixels:
        raise _fail(
            name,
            f"pyramid level of shape {tuple(level.shape)} holds {total} values, more than "
            f"{MAX_STACK_FACTOR} x max_pixels={opts.max_pixels} (possible decompression bomb)",
        )
    TILES_READ["whole_levels"] += 1
    data = np.asarray(level.asarray())
    x0, y0, x1, y1 = window
    index = tuple(slice(y0, y1) if a == "Y" else slice(x0, x1) if a == "X" else slice(None) for a in axes)
    return data[index], axes


def _read_tiles(page: Any, window: tuple[int, int, int, int], axes: str) -> np.ndarray:
    """Decode only the tiles of a single-page tiled level that overlap ``window``."""
    x0, y0, x1, y1 = window
    tile_w, tile_h = int(page.tilewidth), int(page.tilelength)
    width = int(page.imagewidth)
    samples = int(page.samplesperpixel) if axes == "YXS" else 1
    across = -(-width // tile_w)
    out = np.zeros((y1 - y0, x1 - x0, samples), dtype=page.dtype)
    fh = page.parent.filehandle
    for ty in range(y0 // tile_h, (y1 - 1) // tile_h + 1):
        for tx in range(x0 // tile_w, (x1 - 1) // tile_w + 1):
            index = ty * across + tx
            offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
            if count == 0:  # a sparse tile: zeros, as tifffile fills it
                continue
            with fh.lock:
                fh.seek(offset)
                raw = fh.read(count)
            tile, _where, shape = page.decode(raw, index, jpegtables=page.jpegtables)
            tile = np.asarray(tile).reshape(shape[-3], shape[-2], shape[-1])
            TILES_READ["tiles"] += 1
            top, left = ty * tile_h, tx * tile_w
            ya, yb = max(y0, top), min(y1, top + tile.shape[0])
            xa, xb = max(x0, left), min(x1, left + tile.shape[1])
            if ya < yb and xa < xb:
                out[ya - y0 : yb - y0, xa - x0 : xb - x0] = tile[ya - top : yb - top, xa - left : xb - left]
    return out if axes == "YXS" else out[:, :, 0]
