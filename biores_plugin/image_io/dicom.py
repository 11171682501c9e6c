"""Reading DICOM with pydicom: one frame, rendered as a radiologist's viewer would show it.

Monochrome data goes through the modality LUT (rescale slope / intercept), then the window
(``window=`` or the file's VOI LUT / window, as pydicom's ``apply_voi_lut`` renders it, or the
full range of the frame), MONOCHROME1 inverted. Colour data (RGB, YBR converted by pydicom,
palette colour through its LUT) keeps its stored bit depth until the final 8-bit scaling.
Rules: docs/image_loading.md.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, BinaryIO

import numpy as np

from ..errors import BioresError
from ._messages import _exc_text, _fail
from .guards import _check_size
from .intensity import _normalize
from .options import MAX_STACK_FACTOR, _Options
from .sources import _Decoded

_DICM_OFFSET = 128
#: first two bytes of a DICOM data set written without preamble: group 0002 or 0008, either byte order
_NO_PREAMBLE_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: the package that decodes a transfer syntax pydicom cannot decode alone
_HANDLER_HINT = "pylibjpeg with pylibjpeg-libjpeg / pylibjpeg-openjpeg / pylibjpeg-rle, or python-gdcm"


def _is_dicom(stream: BinaryIO) -> bool:
    """``DICM`` after the 128-byte preamble, or a data set that starts with a group 0002/0008 tag."""
    pos = stream.tell()
    head = bytes(stream.read(_DICM_OFFSET + 4))
    stream.seek(pos)
    if head[_DICM_OFFSET : _DICM_OFFSET + 4] == b"DICM":
        return True
    if len(head) < 8 or head[:2] not in _NO_PREAMBLE_GROUPS:
        return False
    vr = head[4:6]  # explicit VR: two capital letters; implicit: a 4-byte length
    return vr.isalpha() and vr.isupper() or head[6:8] == b"\x00\x00"


def is_dicom(data: bytes) -> bool:
    """Whether ``data`` (a file's bytes) is a DICOM file, by content (the rule of the loaders)."""
    return _is_dicom(io.BytesIO(data))


def _read(name: str, stream: BinaryIO, *, pixels: bool) -> Any:
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every oddity; errors are what count
            return pydicom.dcmread(stream, force=True, stop_before_pixels=not pixels)
    except BioresError:
        raise
    except MemoryError as exc:
        raise _fail(name, "not enough memory to read the DICOM file") from exc
    except Exception as exc:
        raise _fail(name, f"truncated or malformed DICOM file ({_exc_text(exc)})") from exc


def _what(ds: Any) -> str:
    """'RT Plan Storage, modality RTPLAN' - what a DICOM file holds, for messages."""
    uid = ds.get("SOPClassUID") or getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", None)
    parts = []
    if uid is not None:
        parts.append(str(getattr(uid, "name", uid)))
    if ds.get("DirectoryRecordSequence") is not None:
        parts.append("DICOMDIR")
    modality = ds.get("Modality")
    if modality:
        parts.append(f"modality {modality}")
    return ", ".join(parts) or "no SOP class"


def _geometry(name: str, ds: Any, *, pixels: bool) -> tuple[int, int, int, int]:
    """``(columns, rows, frames, samples)`` of a DICOM image; a file without pixels is an error."""
    if pixels and not any(k in ds for k in _PIXEL_KEYWORDS):
        raise _fail(name, f"DICOM file without pixel data ({_what(ds)}): not an image")
    missing = [k for k in ("Rows", "Columns") if k not in ds]
    if not pixels and missing:
        raise _fail(name, f"DICOM file without pixel data ({_what(ds)}): not an image")
    if missing:
        raise _fail(name, f"malformed DICOM image: pixel data without {' / '.join(missing)} ({_what(ds)})")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except Exception as exc:  # a malformed value of any kind is one message
        raise _fail(name, f"malformed DICOM image header ({_exc_text(exc)})") from exc
    return cols, rows, max(frames, 1), samples


def _spacing_mm(ds: Any) -> tuple[float, float] | None:
    """``(x, y)`` pixel spacing in mm: PixelSpacing (row, column order in the file), else ImagerPixelSpacing."""
    candidates = [ds.get("PixelSpacing"), ds.get("ImagerPixelSpacing")]
    shared = ds.get("SharedFunctionalGroupsSequence")
    try:
        if shared:
            measures = shared[0].get("PixelMeasuresSequence")
            if measures:
                candidates.insert(0, measures[0].get("PixelSpacing"))
        for value in candidates:
            if value is not None and len(value) == 2:
                row, col = float(value[0]), float(value[1])
                if row > 0 and col > 0:
                    return col, row
    except (TypeError, ValueError, IndexError):  # a malformed spacing is no spacing
        return None
    return None


def dicom_meta(name: str, stream: BinaryIO) -> dict[str, Any]:
    """Header facts for ``biores info``: size, frames, modality, spacing (mm) and µm/px."""
    ds = _read(name, stream, pixels=False)
    cols, rows, frames, _samples = _geometry(name, ds, pixels=False)
    spacing = _spacing_mm(ds)
    return {
        "format": "DICOM",
        "width": cols,
        "height": rows,
        "frames": frames,
        "modality": str(ds.get("Modality") or ""),
        "photometric": str(ds.get("PhotometricInterpretation") or ""),
        "pixel_spacing_mm": list(spacing) if spacing else None,
        "mpp": spacing[0] * 1000.0 if spacing else None,
    }


def _dicom_size(name: str, stream: BinaryIO, max_pixels: int | None) -> tuple[int, int]:
    ds = _read(name, stream, pixels=False)
    cols, rows, _frames, _samples = _geometry(name, ds, pixels=False)
    _check_size(name, cols, rows, max_pixels)
    return cols, rows


def _decoder(name: str, ds: Any) -> Any:
    from pydicom.pixels import get_decoder

    meta = ds.get("file_meta")
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax is None:
        raise _fail(name, "malformed DICOM file: no Transfer Syntax UID, so its pixel data cannot be decoded")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise _fail(
            name,
            f"DICOM transfer syntax {syntax.name} ({syntax}) has no pixel decoder in pydicom "
            "(convert the file to a still-image syntax, e.g. with gdcmconv or dcmtk)",
        ) from exc
    if not decoder.is_available:
        raise _fail(name, f"DICOM transfer syntax {syntax.name} needs a pixel-data handler: install {_HANDLER_HINT}")
    return decoder


def _frame(name: str, ds: Any, frames: int, opts: _Options) -> np.ndarray:
    index = frames // 2 if opts.frame is None else opts.frame
    if index >= frames:
        raise _fail(name, f"frame {index} out of range: the DICOM file has {frames} frame{'s' if frames != 1 else ''}")
    decoder = _decoder(name, ds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr, _meta = decoder.as_array(ds, index=index)
    except BioresError:
        raise
    except MemoryError as exc:
        raise _fail(name, "not enough memory to decode the DICOM pixel data") from exc
    except AttributeError as exc:  # pydicom: "Missing required element: (0028,0100) 'Bits Allocated'"
        raise _fail(name, f"malformed DICOM image header ({_exc_text(exc)})") from exc
    except Exception as exc:
        raise _fail(name, f"corrupt or truncated DICOM pixel data ({_exc_text(exc)})") from exc
    arr = np.asarray(arr)
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _dicom_decode(name: str, stream: BinaryIO, opts: _Options) -> _Decoded:
    ds = _read(name, stream, pixels=True)
    cols, rows, frames, samples = _geometry(name, ds, pixels=True)
    _check_size(name, cols, rows, opts.max_pixels)
    total = frames * rows * cols * samples
    if opts.max_pixels is not None and total > MAX_STACK_FACTOR * opts.max_pixels:
        raise _fail(
            name,
            f"DICOM file of {frames} frames x {rows} x {cols} x {samples} holds {total} values, more than "
            f"{MAX_STACK_FACTOR} x max_pixels={opts.max_pixels} (possible decompression bomb)",
        )
    arr = _frame(name, ds, frames, opts)
    spacing = _spacing_mm(ds)
    mpp = spacing[0] * 1000.0 if spacing else None
    try:
        data = _render(name, ds, arr, samples, opts)
    except BioresError:
        raise
    except Exception as exc:
        raise _fail(name, f"malformed DICOM pixel description ({_exc_text(exc)})") from exc
    return _Decoded(array=data, mpp=mpp)


def _render(name: str, ds: Any, arr: np.ndarray, samples: int, opts: _Options) -> np.ndarray:
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if samples == 1 and photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = np.asarray(apply_color_lut(arr, ds))
        return _scale_bits(rgb, _lut_bits(ds, rgb))
    if samples != 1:
        if arr.ndim == 2:
            raise _fail(name, f"DICOM declares {samples} samples per pixel but decodes to one")
        return _scale_bits(arr, int(ds.get("BitsStored") or arr.dtype.itemsize * 8))
    if arr.ndim != 2:
        raise _fail(name, f"DICOM frame of shape {arr.shape} is not a single-sample image")
    from pydicom.pixels import apply_modality_lut

    values = np.asarray(apply_modality_lut(arr, ds))
    if opts.normalize == "raw":
        return values.astype(np.float32)[:, :, None]
    inverted = photometric == "MONOCHROME1"
    if opts.window is None and opts.normalize != "auto":  # an explicit normalisation instead of the window
        values = -values.astype(np.float64) if inverted else values
        return values[:, :, None]
    u8 = _voi(name, ds, values, opts)
    return (255 - u8 if inverted else u8)[:, :, None]


def _voi(name: str, ds: Any, values: np.ndarray, opts: _Options) -> np.ndarray:
    """The 8-bit rendering: ``window=``, else the file's VOI LUT or window, else the full range."""
    if opts.window is not None:
        return _window(values, opts.window[0], opts.window[1], "LINEAR")
    lut_seq = ds.get("VOILUTSequence")
    if lut_seq:
        from pydicom.pixels import apply_voi_lut

        out = np.asarray(apply_voi_lut(values, ds, index=0, prefer_lut=True), dtype=np.float64)
        table = np.asarray(lut_seq[0].LUTData, dtype=np.float64)
        lo, hi = float(table.min()), float(table.max())
        if hi > lo:
            return np.rint(np.clip((out - lo) * (255.0 / (hi - lo)), 0, 255)).astype(np.uint8)
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
        if function != "LINEAR" or width >= 1:
            return _window(values, center, width, function)
    return _normalize(name, values[:, :, None].astype(np.float64), "minmax", (0.0, 100.0))[:, :, 0]


def _first(value: Any) -> float | None:
    if value is None:
        return None
    try:
        item = value[0] if not isinstance(value, (str, bytes)) and hasattr(value, "__getitem__") else value
        return float(item)
    except (TypeError, ValueError, IndexError):
        return None


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing of modality values straight onto 0..255."""
    x = values.astype(np.float64)
    if function == "SIGMOID":
        y = 255.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    elif function == "LINEAR_EXACT":
        y = np.clip((x - center) / width + 0.5, 0.0, 1.0) * 255.0
    else:  # LINEAR (and unknown functions, as pydicom does)
        low = center - 0.5 - (width - 1) / 2
        y = np.where(x <= low, 0.0, np.where(x > center - 0.5 + (width - 1) / 2, 255.0, 0.0))
        between = (x > low) & (x <= center - 0.5 + (width - 1) / 2)
        if width > 1:
            y[between] = ((x[between] - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.rint(np.clip(y, 0.0, 255.0)).astype(np.uint8)


def _lut_bits(ds: Any, rgb: np.ndarray) -> int:
    try:
        return int(ds.RedPaletteColorLookupTableDescriptor[2])
    except (AttributeError, IndexError, TypeError, ValueError):
        return 8 if rgb.dtype == np.uint8 else 16


def _scale_bits(arr: np.ndarray, bits: int) -> np.ndarray:
    """Colour data of ``bits`` bits onto 0..255 exactly (8-bit data untouched)."""
    if arr.dtype == np.uint8 or bits <= 8 and arr.dtype.kind == "u" and int(arr.max(initial=0)) <= 255:
        return arr.astype(np.uint8, copy=False)
    top = float(2 ** min(max(bits, 1), 64) - 1)
    scaled = np.clip(arr.astype(np.float64), 0, top) * (255.0 / top)
    return np.rint(scaled).astype(np.uint8)
