"""The shape of a TIFF series and its data laid out as ``H x W x C``.

Shared by the whole-image reader (:mod:`.tiff`) and the pyramid / region reader (:mod:`.pyramid`),
which both sit above this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._messages import _fail
from .arrays import _orient_array, _project
from .options import MAX_GUESSED_CHANNELS, _Options
from .sources import _Decoded


def _tiff_layout(name: str, tf: Any) -> tuple[Any, str, tuple[int, ...], int, int]:
    if not tf.series:
        raise _fail(
            name,
            "TIFF file contains no readable image (truncated or corrupt IFD structure)",
        )
    series = tf.series[0]
    axes = str(series.axes).upper()
    shape = tuple(int(s) for s in series.shape)
    if "Y" not in axes or "X" not in axes or len(axes) != len(shape):
        raise _fail(name, f"unsupported TIFF layout (axes {axes!r}, shape {shape})")
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    return series, axes, shape, width, height


def _tiff_arrange(data: np.ndarray, axes: str, page: Any, opts: _Options, orientation: int) -> _Decoded:
    """TIFF data with ``axes`` -> ``H x W x C``: photometric, alpha, stack projection, orientation."""
    photometric_value = getattr(page, "photometric", None)
    photometric = -1 if photometric_value is None else int(photometric_value)
    extrasamples = tuple(int(e) for e in (getattr(page, "extrasamples", ()) or ()))
    colormap = getattr(page, "colormap", None)
    # big-endian files: work in native byte order
    if data.dtype.byteorder not in ("=", "|"):
        data = data.astype(data.dtype.newbyteorder("="))

    # photometric interpretation: MINISWHITE (0) inverts, PALETTE (3) maps through the colormap
    if photometric == 0 and data.dtype.kind in "ub":
        data = np.logical_not(data) if data.dtype == bool else np.iinfo(data.dtype).max - data
    if photometric == 3 and colormap is not None and data.dtype.kind == "u" and "S" not in axes:
        cmap = np.asarray(colormap)
        cmap = (cmap >> 8).astype(np.uint8) if cmap.max() > 255 else cmap.astype(np.uint8)
        data = np.moveaxis(cmap[:, np.clip(data, 0, cmap.shape[1] - 1)], 0, -1)
        axes += "S"
        photometric = 2

    # roles: channel axes (C, S), spatial (Y, X), everything else is a stack axis
    roles = []
    for letter in axes:
        roles.append("c" if letter in "CS" else letter.lower() if letter in "YX" else "z")
    if "c" not in roles:
        for i in range(len(axes) - 1, -1, -1):
            if axes[i] in "QI" and data.shape[i] <= MAX_GUESSED_CHANNELS:
                roles[i] = "c"
                break

    alpha = False
    premultiplied = False
    if "S" in axes and extrasamples and extrasamples[0] in (1, 2):
        s_len = data.shape[axes.index("S")]
        n_colour = s_len - len(extrasamples)
        if n_colour in (1, 3) and "C" not in axes:
            keep = np.take(data, np.arange(n_colour + 1), axis=axes.index("S"))
            data = keep
            alpha = True
            premultiplied = extrasamples[0] == 1

    # project stack axes (keep the others)
    stack_axes = tuple(i for i, r in enumerate(roles) if r == "z")
    if stack_axes:
        data = _project(data, stack_axes, opts.projection)
        roles = [r for r in roles if r != "z"]

    # to Y, X, C (merge several channel axes, e.g. C and S)
    chan_axes = [i for i, r in enumerate(roles) if r == "c"]
    order = [roles.index("y"), roles.index("x")] + chan_axes
    data = np.transpose(data, order)
    data = data.reshape(data.shape[0], data.shape[1], -1)

    data = _orient_array(data, orientation)
    return _Decoded(array=data, alpha=alpha, premultiplied=premultiplied)
