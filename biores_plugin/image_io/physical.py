"""Physical pixel size: reading it from TIFF / OME-TIFF, and ``region=`` / ``mpp=`` on decoded pixels.

``mpp`` is micrometres per pixel. A target coarser than the stored pixels resamples exactly to
``round(size * stored_mpp / target)`` (antialiased Lanczos, as the resolution caps); a target
as fine as or finer than the stored pixels keeps them (never upsampled).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
from PIL import Image

from ._messages import _fail
from .guards import _check_size
from .options import _Options
from .sources import _Decoded

#: micrometres per unit, for OME's PhysicalSizeXUnit
_UM_PER_UNIT = {"pm": 1e-6, "nm": 1e-3, "µm": 1.0, "um": 1.0, "μm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6, "Å": 1e-4}
_SVS_MPP = re.compile(r"\bMPP\s*=\s*([0-9.]+(?:[eE][-+]?[0-9]+)?)")
#: Pillow's reducing gap (a box pre-reduction, then Lanczos), as in resolution/resize.py
_REDUCING_GAP = 3.0


def _tiff_mpp(tf: Any, page: Any) -> float | None:
    """µm/px of a TIFF's first image: OME PhysicalSizeX, an SVS ``MPP =``, or the resolution tags."""
    try:
        if getattr(tf, "is_ome", False) and tf.ome_metadata:
            root = ET.fromstring(tf.ome_metadata)
            for element in root.iter():
                if element.tag.endswith("}Pixels") or element.tag == "Pixels":
                    size = element.get("PhysicalSizeX")
                    if size is not None:
                        value = float(size) * _UM_PER_UNIT.get(element.get("PhysicalSizeXUnit", "µm"), math.nan)
                        return value if value > 0 else None
                    break
        match = _SVS_MPP.search(str(getattr(page, "description", "") or ""))
        if match:
            value = float(match.group(1))
            return value if value > 0 else None
        xres, unit = page.tags.get(282), page.tags.get(296)
        if xres is None or unit is None or int(unit.value) not in (2, 3):
            return None
        num, den = xres.value
        per_unit = float(num) / float(den) if den else 0.0
        if per_unit <= 0:
            return None
        return (25400.0 if int(unit.value) == 2 else 10000.0) / per_unit
    except (ET.ParseError, TypeError, ValueError, ZeroDivisionError):  # no usable pixel size
        return None


def _target_size(width: int, height: int, mpp: float, target: float) -> tuple[int, int]:
    """The size of a ``width x height`` image of ``mpp`` µm/px at ``target`` (never larger)."""
    if target <= mpp * (1 + 1e-9):
        return width, height
    factor = mpp / target
    return max(1, round(width * factor)), max(1, round(height * factor))


def _check_region(name: str, region: tuple[int, int, int, int], width: int, height: int) -> None:
    x, y, w, h = region
    if x + w > width or y + h > height:
        raise _fail(name, f"region {region} (x, y, width, height) is outside the {width}x{height} image")


def _resample(arr: np.ndarray, size: tuple[int, int], box: tuple[float, ...] | None = None) -> np.ndarray:
    """``H x W x C`` data of any dtype at ``size`` (Lanczos, antialiased), in its own dtype."""
    if box is None and (arr.shape[1], arr.shape[0]) == tuple(size):
        return arr
    if arr.dtype == np.uint8 and arr.shape[2] in (1, 3):
        im = Image.fromarray(np.ascontiguousarray(arr[:, :, 0] if arr.shape[2] == 1 else arr))
        out = np.asarray(im.resize(size, Image.LANCZOS, box=box, reducing_gap=_REDUCING_GAP))
        return out.reshape(size[1], size[0], arr.shape[2])
    result = np.empty((size[1], size[0], arr.shape[2]), dtype=arr.dtype)
    for c in range(arr.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(arr[:, :, c], dtype=np.float32))
        out = np.asarray(plane.resize(size, Image.LANCZOS, box=box, reducing_gap=_REDUCING_GAP))
        if arr.dtype == bool:
            result[:, :, c] = out >= 0.5
        elif arr.dtype.kind in "ui":
            info = np.iinfo(arr.dtype)
            result[:, :, c] = np.clip(np.rint(out), info.min, info.max)
        else:
            result[:, :, c] = out
    return result


def _apply_physical(name: str, dec: _Decoded, opts: _Options) -> _Decoded:
    """``region=`` and ``mpp=`` for decoders that read the whole image (all but pyramids)."""
    if dec.cropped or (opts.region is None and opts.mpp is None):
        return dec
    if dec.pil is not None:  # the 8-bit fast path: crop and resample the PIL image itself
        im = dec.pil
        width, height = im.size
    else:
        assert dec.array is not None
        height, width = dec.array.shape[:2]
    if opts.region is not None:
        _check_region(name, opts.region, width, height)
        x, y, w, h = opts.region
        if dec.pil is not None:
            dec.pil, dec.pil_is_input = dec.pil.crop((x, y, x + w, y + h)), False
        else:
            assert dec.array is not None
            dec.array = dec.array[y : y + h, x : x + w]
        width, height = w, h
    if opts.mpp is not None:
        if dec.mpp is None:
            raise _fail(
                name,
                f"mpp={opts.mpp:g} needs the image's physical pixel size, and it declares none "
                "(no DICOM PixelSpacing, OME PhysicalSizeX or TIFF resolution in cm / inch)",
            )
        size = _target_size(width, height, dec.mpp, opts.mpp)
        _check_size(name, size[0], size[1], opts.max_pixels)
        if size != (width, height):
            if dec.pil is not None:
                dec.pil = dec.pil.resize(size, Image.LANCZOS, reducing_gap=_REDUCING_GAP)
                dec.pil_is_input = False
            else:
                assert dec.array is not None
                dec.array = _resample(dec.array, size)
            dec.mpp = dec.mpp * width / size[0]
    dec.cropped = True
    return dec
