"""Header facts of an image for ``biores info``: format, size, frames, pyramid levels, pixel size.

Only headers are read (no pixel decoding); failures are the loaders' one-line errors.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from .dicom import _is_dicom, dicom_meta
from .options import _Options
from .physical import _tiff_mpp
from .pipeline import _run, _size_step
from .sources import _is_tiff, _Source

#: tifffile's format flags -> the name ``image_meta`` reports
_KINDS = {"is_ome": "OME-TIFF", "is_svs": "SVS", "is_ndpi": "NDPI", "is_scn": "SCN"}


def image_meta(source: Any) -> dict[str, Any]:
    """``{"format", "width", "height", "frames", "levels", "mpp", "pixel_spacing_mm", ...}`` of ``source``.

    ``mpp`` is micrometres per pixel of the stored (base) pixels, None where the file declares
    no physical size; ``levels`` lists the ``(width, height)`` of each pyramid level (TIFF).
    """

    def step(name: str, src: _Source, opts: _Options) -> dict[str, Any]:
        stream = src.stream
        if stream is not None and _is_dicom(stream):
            return dicom_meta(name, stream)
        start = stream.tell() if stream is not None else 0
        width, height = _size_step(name, src, opts)
        kind = {"array": "array", "pil": "PIL image"}.get(src.kind, "image")
        meta: dict[str, Any] = {"format": kind, "width": width, "height": height, "frames": 1, "mpp": None}
        if stream is not None:
            stream.seek(start)
            if _is_tiff(stream):
                meta.update(_tiff_meta(stream))
            else:
                meta["format"] = str(Image.open(stream).format or "image")
        meta["pixel_spacing_mm"] = None if meta["mpp"] is None else [meta["mpp"] / 1000.0] * 2
        return meta

    return _run("image_meta", source, {}, step, allow_raw=False, rgb_output=False)


def _tiff_meta(stream: Any) -> dict[str, Any]:
    import tifffile

    with tifffile.TiffFile(stream) as tf:
        series = tf.series[0]
        levels = []
        for level in getattr(series, "levels", None) or [series]:
            axes, shape = str(level.axes).upper(), tuple(int(s) for s in level.shape)
            levels.append([shape[axes.index("X")], shape[axes.index("Y")]])
        return {
            "format": next((label for flag, label in _KINDS.items() if getattr(tf, flag, False)), "TIFF"),
            "levels": levels,
            "mpp": _tiff_mpp(tf, series.keyframe),
        }
