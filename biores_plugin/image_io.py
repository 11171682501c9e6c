"""Load any biomedical image into a checked RGB image or channel array.

Public API
----------
``load_image(source, *, channels=None, projection="max", normalize="auto",
percentiles=(0.5, 99.5), max_pixels=DEFAULT_MAX_PIXELS, background=(255, 255, 255),
exif_transpose=True) -> PIL.Image.Image``
    Always returns a decoded image in mode ``"RGB"``.

``load_array(source, *, keep_channels=True, <same options>) -> numpy.ndarray``
    Returns an ``H x W x C`` array. With ``keep_channels=True``, C is the file's channel
    count after channel selection (1 for grayscale). With ``keep_channels=False``, C is 3
    (RGB). The dtype is ``uint8``, except with ``normalize="raw"`` (see below).

``image_size(source, *, max_pixels=DEFAULT_MAX_PIXELS, exif_transpose=True) -> (width, height)``
    Reads only the header, without decoding pixels. The size matches what
    ``load_image`` returns, with EXIF orientation applied.

``source`` can be a path (``str`` / ``os.PathLike``), ``bytes`` / ``bytearray`` /
``memoryview``, a binary file-like object (read from its start, as Pillow does), a
``PIL.Image.Image`` or a ``numpy.ndarray``. TIFF files are read with ``tifffile``, which
knows their axes (Z/C/T/S/Y/X). If a TIFF uses a compression that tifffile cannot decode
without ``imagecodecs`` (LZW, JPEG, PackBits, ...), Pillow reads it instead. Every other
format is read with Pillow.

Every failure raises :class:`biores_plugin.errors.BioresImageError` with a one-line
message. The message names the source (the path, ``<bytes>``, ``<file>``, ``<PIL image>``
or ``<numpy array>``) and the problem: missing file, directory, empty input, not an
image, truncated, decompression bomb, zero-sized, bad array, and so on. A bad option
raises :class:`ImageOptionError`, which is both a ``BioresImageError`` and a
``BioresConfigError``.

Decisions for ambiguous cases
-----------------------------
* Channels. Colour images read by Pillow (RGB, P, CMYK, YCbCr, ...) always become 3 RGB
  channels. L / I;16 / I / F images have 1 channel. Alpha (LA, RGBA, PA, P or L/RGB with
  ``transparency``, and TIFF extra samples marked as alpha) is always composited onto
  ``background``, so the result has 3 channels. Numpy arrays carry no alpha: an
  ``HxWx4`` array means 4 plain channels.
* Mapping to RGB, with or without ``channels=``: 1 channel -> gray repeated in R, G and B;
  2 channels -> R, G, with B set to zero; 3 channels -> R, G, B; 4 or more channels ->
  the first three. If ``channels=`` selects more than 3 channels and the result must be
  RGB, that is an error. ``load_array(keep_channels=True)`` returns every selected
  channel. Channel indices must be non-negative and smaller than the channel count.
  Duplicate indices are allowed.
* Axes. For TIFF, tifffile's ``series.axes`` decides: ``C`` and ``S`` are channels.
  ``Y`` and ``X`` are spatial. Every other axis (``Z``, ``T``, ...) is reduced with
  ``projection``. Unlabelled axes (``Q``/``I``, as written by a plain
  ``tifffile.imwrite``) are guessed: if there is no C/S axis, the last unlabelled axis
  that is at most ``MAX_GUESSED_CHANNELS`` (8) long becomes the channel axis. The other
  unlabelled axes are stack axes. Numpy arrays have no labels, so the shape decides: 2-D is
  ``HxW``. For 3-D, ``HxWxC`` when the last axis is at most 8 long and no longer than the
  first. Otherwise ``CxHxW`` when the first axis is at most 8 long. Otherwise ``ZxHxW``.
  A 4-D array is ``ZxHxWxC`` when its last axis is at most 8 long, else ``ZxCxHxW``.
  Other ndims are an error.
* Intensities. ``uint8`` data is never rescaled. Other data is normalised per channel to
  ``uint8``:
  - ``"minmax"``: min..max -> 0..255.
  - ``"percentile"``: clip to the ``percentiles`` of the channel, then rescale.
    Percentiles are computed on a regular subsample when a channel has more than about 4
    million pixels. If the two percentiles are equal (for example a sparse fluorescence
    channel), min..max is used for that channel.
  - ``"auto"``: integers -> percentile; floats with all finite values in [0, 1] -> times
    255; other floats -> percentile; bool -> 0/255.
  - ``"none"`` or ``None``: fixed full-range scaling with no data statistics. uint16 is
    divided by 257. Other integer types map their whole dtype range to 0..255. Floats are
    clipped to [0, 1] and multiplied by 255.
  - ``"raw"`` (``load_array`` only): no scaling and no compositing. The result is
    ``float32`` in the original units, and alpha stays an ordinary channel.
  A constant channel maps to 0 (no division by zero). NaN and +-inf in float images are
  replaced, not an error: NaN and -inf become the low end of the range (0) and +inf the
  high end (255). The statistics use finite values only. An image with no finite value
  at all is an error.
* Guards: ``width * height > max_pixels`` ("decompression bomb") is checked from the
  header, before any pixel is decoded. Pillow's own ``DecompressionBombError`` (and its
  warning, when warnings are turned into errors) is converted too. Pillow's global
  ``Image.MAX_IMAGE_PIXELS`` still applies to files Pillow decodes. For TIFF stacks, the
  whole series is also limited to ``MAX_STACK_FACTOR * max_pixels`` elements. A truncated
  file is always an error, even if ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` was set: the
  flag is forced to False while this module decodes (reference-counted, then restored).
  An extreme aspect ratio is not an error.
* EXIF orientation (tag 274) is applied with ``ImageOps.exif_transpose`` to images read by
  Pillow, including PIL inputs. The TIFF Orientation tag is applied to arrays read by
  tifffile.
* Fast path: with no channel selection, an 8-bit image read by Pillow skips numpy. RGB is
  returned as decoded, and other modes get a single ``convert("RGB")``. A PIL input is
  copied, so the caller's image is never changed.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageColor, ImageFile, ImageOps, UnidentifiedImageError

from .errors import BioresConfigError, BioresError, BioresImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_GUESSED_CHANNELS",
    "MAX_STACK_FACTOR",
    "ImageOptionError",
    "image_size",
    "load_array",
    "load_image",
]

#: Default pixel limit (width * height): twice Pillow's default ``MAX_IMAGE_PIXELS``, i.e. the
#: size at which Pillow itself raises ``DecompressionBombError``.
DEFAULT_MAX_PIXELS = 178_956_970
#: An unlabelled axis no longer than this is taken as a channel axis (see module docstring).
MAX_GUESSED_CHANNELS = 8
#: A TIFF series (all planes and channels together) may hold at most this many times
#: ``max_pixels`` elements.
MAX_STACK_FACTOR = 64

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PROJECTIONS = ("max", "mean", "first")
_NORMALIZE_MODES = ("auto", "minmax", "percentile", "none", None)
_ORIENTATION_TAG = 0x0112
_PERCENTILE_SAMPLE = (
    1 << 22
)  # pixels per channel above which percentiles use a subsample
_MAX_MESSAGE = 300
# Pillow modes that can go straight to RGB with one convert() (8-bit, no alpha).
_PIL_RGB_MODES = frozenset(
    {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)
_PIL_ALPHA_MODES = {
    "LA": "LA",
    "La": "LA",
    "PA": "RGBA",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
}


class ImageOptionError(BioresImageError, BioresConfigError):
    """An option given to :func:`load_image` / :func:`load_array` is invalid."""


# --------------------------------------------------------------------------- messages


def _one_line(text: object) -> str:
    """Collapse all whitespace (including newlines) and cap the length."""
    flat = " ".join(str(text).split())
    if len(flat) > _MAX_MESSAGE:
        flat = flat[: _MAX_MESSAGE - 3] + "..."
    return flat


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        try:
            return repr(os.fsdecode(os.fspath(source)))
        except Exception:  # noqa: BLE001 - exotic PathLike; only used for the message
            return "<path>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return "<PIL image>"
    if isinstance(source, np.ndarray):
        return "<numpy array>"
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return repr(name)
    if hasattr(source, "read"):
        return "<file>"
    return f"<{type(source).__name__}>"


def _fail(
    name: str, problem: str, cls: type[BioresImageError] = BioresImageError
) -> BioresImageError:
    return cls(_one_line(f"cannot load image {name}: {problem}"))


def _exc_text(exc: BaseException) -> str:
    text = _one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class _Options:
    channels: tuple[int, ...] | None
    projection: str
    normalize: str | None
    percentiles: tuple[float, float]
    max_pixels: int | None
    background: tuple[int, int, int]
    exif_transpose: bool


def _check_options(
    name: str,
    *,
    channels: Any,
    projection: Any,
    normalize: Any,
    percentiles: Any,
    max_pixels: Any,
    background: Any,
    exif_transpose: Any,
    allow_raw: bool,
    rgb_output: bool,
) -> _Options:
    def bad(problem: str) -> ImageOptionError:
        return _fail(name, problem, ImageOptionError)  # type: ignore[return-value]

    # channels
    sel: tuple[int, ...] | None
    if channels is None:
        sel = None
    else:
        items: Any = channels
        if isinstance(channels, (int, np.integer)) and not isinstance(
            channels, (bool, np.bool_)
        ):
            items = (channels,)
        if isinstance(items, (str, bytes)) or not isinstance(
            items, (Sequence, range, np.ndarray)
        ):
            raise bad(
                f"channels must be None, an int or a sequence of ints, got {type(channels).__name__}"
            )
        sel_list = []
        for idx in (
            list(np.asarray(items).ravel())
            if isinstance(items, np.ndarray)
            else list(items)
        ):
            if isinstance(idx, (bool, np.bool_)) or not isinstance(
                idx, (int, np.integer)
            ):
                raise bad(f"channel indices must be ints, got {idx!r}")
            if idx < 0:
                raise bad(f"channel indices must be >= 0, got {int(idx)}")
            sel_list.append(int(idx))
        if not sel_list:
            raise bad("channels selects no channel (empty selection)")
        if rgb_output and len(sel_list) > 3:
            raise bad(
                f"too many channels selected ({len(sel_list)}: {sel_list}); at most 3 can be mapped to RGB"
            )
        sel = tuple(sel_list)

    if projection not in _PROJECTIONS:
        raise bad(
            f"projection must be one of 'max', 'mean', 'first', got {projection!r}"
        )

    allowed = _NORMALIZE_MODES + (("raw",) if allow_raw else ())
    if normalize not in allowed:
        names = ", ".join(repr(m) for m in allowed)
        raise bad(f"normalize must be one of {names}, got {normalize!r}")

    try:
        lo, hi = (float(p) for p in percentiles)
    except Exception:  # noqa: BLE001 - any malformed value is an option error
        raise bad(
            f"percentiles must be two numbers (low, high), got {percentiles!r}"
        ) from None
    if not (0.0 <= lo < hi <= 100.0):
        raise bad(f"percentiles must satisfy 0 <= low < high <= 100, got ({lo}, {hi})")

    if max_pixels is not None:
        if (
            isinstance(max_pixels, bool)
            or not isinstance(max_pixels, (int, np.integer))
            or max_pixels <= 0
        ):
            raise bad(f"max_pixels must be a positive int or None, got {max_pixels!r}")
        max_pixels = int(max_pixels)

    bg = _check_background(background)
    if bg is None:
        raise bad(
            f"background must be an RGB triple of ints in 0..255, a gray int or a colour name, got {background!r}"
        )

    return _Options(
        sel, projection, normalize, (lo, hi), max_pixels, bg, bool(exif_transpose)
    )


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
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, np.integer))
            or not 0 <= v <= 255
        ):
            return None
        out.append(int(v))
    return (out[0], out[1], out[2])


# --------------------------------------------------------------------------- sources


@dataclass
class _Source:
    name: str
    kind: str  # "stream" | "pil" | "array"
    stream: BinaryIO | None = None
    pil: Image.Image | None = None
    array: np.ndarray | None = None


@contextlib.contextmanager
def _open_source(source: Any, name: str) -> Iterator[_Source]:
    if isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(source))
        if not path:
            raise _fail(name, "empty path")
        if os.path.isdir(path):
            raise _fail(name, "is a directory, not an image file")
        if not os.path.exists(path):
            raise _fail(name, "file not found (missing path)")
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise _fail(
                name, f"cannot open file ({exc.strerror or _exc_text(exc)})"
            ) from exc
        with fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise _fail(name, "empty file (0 bytes)")
            yield _Source(name, "stream", stream=fh)
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = (
            source if isinstance(source, bytes) else bytes(source)
        )  # memoryview of any shape too
        if not data:
            raise _fail(name, "empty bytes (0 bytes)")
        yield _Source(name, "stream", stream=io.BytesIO(data))
        return
    if isinstance(source, Image.Image):
        yield _Source(name, "pil", pil=source)
        return
    if isinstance(source, np.ndarray):
        yield _Source(name, "array", array=source)
        return
    if hasattr(source, "read") and callable(source.read):
        if isinstance(source, io.TextIOBase):
            raise _fail(
                name,
                "file-like object is opened in text mode; open it in binary mode ('rb')",
            )
        stream: BinaryIO
        try:
            seekable = (
                bool(source.seekable())
                if hasattr(source, "seekable")
                else hasattr(source, "seek")
            )
            if seekable:
                source.seek(0, os.SEEK_END)
                size = source.tell()
                source.seek(0)
                stream = source
            else:
                data = source.read()
                size = len(data)
                stream = io.BytesIO(data)
        except BioresError:
            raise
        except Exception as exc:
            raise _fail(
                name, f"cannot read file-like object ({_exc_text(exc)})"
            ) from exc
        if not isinstance(size, int) or size == 0:
            raise _fail(name, "empty file (0 bytes)")
        yield _Source(name, "stream", stream=stream)
        return
    raise _fail(
        name,
        f"unsupported source type {type(source).__name__!r} "
        "(expected a path, bytes, a binary file-like object, a PIL image or a numpy array)",
    )


def _is_tiff(stream: BinaryIO) -> bool:
    pos = stream.tell()
    head = stream.read(4)
    stream.seek(pos)
    return bytes(head) in _TIFF_MAGIC


# --------------------------------------------------------------------------- guards


def _check_size(name: str, width: int, height: int, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise _fail(name, f"zero-sized image ({width}x{height} pixels)")
    if max_pixels is not None and width * height > max_pixels:
        raise _fail(
            name,
            f"image of {width}x{height} = {width * height} pixels exceeds max_pixels={max_pixels} "
            "(possible decompression bomb)",
        )


_truncation_lock = threading.Lock()
_truncation_depth = 0
_truncation_saved = False


@contextlib.contextmanager
def _strict_truncation() -> Iterator[None]:
    """Force ``ImageFile.LOAD_TRUNCATED_IMAGES = False`` while decoding; restore it afterwards."""
    global _truncation_depth, _truncation_saved
    with _truncation_lock:
        if _truncation_depth == 0:
            _truncation_saved = ImageFile.LOAD_TRUNCATED_IMAGES
        _truncation_depth += 1
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        with _truncation_lock:
            _truncation_depth -= 1
            if _truncation_depth == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _truncation_saved


def _pil_error(name: str, exc: BaseException, *, stage: str) -> BioresImageError:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _fail(name, f"possible decompression bomb ({_one_line(exc)})")
    if isinstance(exc, UnidentifiedImageError):
        return _fail(
            name, "not a recognised image (corrupt data or unsupported format)"
        )
    if isinstance(exc, MemoryError):
        return _fail(name, "not enough memory to decode the image")
    text = str(exc).lower()
    if (
        isinstance(exc, EOFError)
        or "truncated" in text
        or "broken data stream" in text
        or "premature end" in text
    ):
        return _fail(name, f"truncated or incomplete image data ({_exc_text(exc)})")
    if stage == "open":
        return _fail(name, f"corrupt image header ({_exc_text(exc)})")
    return _fail(name, f"corrupt image data ({_exc_text(exc)})")


# --------------------------------------------------------------------------- decoded data


@dataclass
class _Decoded:
    """Pixels as ``H x W x C`` (``alpha`` True: the last channel is alpha) or a PIL image."""

    array: np.ndarray | None = None
    alpha: bool = False
    premultiplied: bool = False
    pil: Image.Image | None = (
        None  # 8-bit image that converts straight to RGB (fast path)
    )
    pil_is_input: bool = False


# ----------------------------------------------------------------- Pillow reading


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
    except (
        Exception
    ) as exc:  # includes DecompressionBombError / warnings turned into errors
        raise _pil_error(name, exc, stage="open") from exc


def _pil_size(
    name: str, stream: BinaryIO, opts_max: int | None, exif: bool
) -> tuple[int, int]:
    im = _pil_open(name, stream)
    w, h = im.size
    _check_size(name, w, h, opts_max)
    if exif and _pil_orientation_from_header(im) >= 5:
        w, h = h, w
    return w, h


def _pil_decode(
    name: str, im: Image.Image, opts: _Options, *, is_input: bool
) -> _Decoded:
    w, h = im.size
    _check_size(name, w, h, opts.max_pixels)
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


# ----------------------------------------------------------------- TIFF reading


class _CodecMissing(Exception):
    pass


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


def _tiff_orientation(series: Any) -> int:
    try:
        page = (
            series.keyframe
            if getattr(series, "keyframe", None) is not None
            else series.pages[0]
        )
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
    if (
        "failed to read" in text
        or "truncated" in text
        or isinstance(exc, EOFError)
        or "unexpected end" in text
    ):
        return _fail(name, f"truncated or incomplete TIFF data ({_exc_text(exc)})")
    if stage == "open":
        return _fail(name, f"corrupt TIFF header ({_exc_text(exc)})")
    return _fail(name, f"corrupt or unreadable TIFF data ({_exc_text(exc)})")


def _tiff_size(
    name: str, stream: BinaryIO, max_pixels: int | None, exif: bool
) -> tuple[int, int]:
    tf = _tiff_open(name, stream)
    try:
        series, _axes, _shape, w, h = _tiff_layout(name, tf)
        _check_size(name, w, h, max_pixels)
        if exif and _tiff_orientation(series) >= 5:
            w, h = h, w
        return w, h
    except BioresError:
        raise
    except Exception as exc:
        raise _tiff_error(name, exc, stage="open") from exc
    finally:
        tf.close()


def _tiff_decode(name: str, stream: BinaryIO, opts: _Options) -> _Decoded:
    tf = _tiff_open(name, stream)
    try:
        return _tiff_decode_open(name, tf, opts)
    except (BioresError, _CodecMissing):
        raise
    except Exception as exc:
        raise _tiff_error(name, exc, stage="read") from exc
    finally:
        tf.close()


def _tiff_decode_open(name: str, tf: Any, opts: _Options) -> _Decoded:
    series, axes, shape, width, height = _tiff_layout(name, tf)
    _check_size(name, width, height, opts.max_pixels)
    total = math.prod(shape)
    if opts.max_pixels is not None and total > MAX_STACK_FACTOR * opts.max_pixels:
        raise _fail(
            name,
            f"TIFF series of shape {shape} holds {total} values, more than "
            f"{MAX_STACK_FACTOR} x max_pixels={opts.max_pixels} (possible decompression bomb)",
        )
    page = (
        series.keyframe
        if getattr(series, "keyframe", None) is not None
        else series.pages[0]
    )
    photometric_value = getattr(page, "photometric", None)
    photometric = -1 if photometric_value is None else int(photometric_value)
    extrasamples = tuple(int(e) for e in (getattr(page, "extrasamples", ()) or ()))
    colormap = getattr(page, "colormap", None)
    try:
        data = series.asarray()
    except (KeyError, ValueError, ImportError, ModuleNotFoundError) as exc:
        if "imagecodecs" in str(exc) or isinstance(exc, ImportError):
            raise _CodecMissing(str(exc)) from exc
        raise
    data = np.asarray(data)
    # big-endian files: work in native byte order
    if data.dtype.byteorder not in ("=", "|"):
        data = data.astype(data.dtype.newbyteorder("="))
    if data.shape != shape:  # defensive: tifffile should honour series.shape
        raise _fail(
            name,
            f"TIFF data shape {data.shape} does not match its series shape {shape}",
        )

    # photometric interpretation: MINISWHITE (0) inverts, PALETTE (3) maps through the colormap
    if photometric == 0 and data.dtype.kind in "ub":
        data = (
            np.logical_not(data)
            if data.dtype == bool
            else np.iinfo(data.dtype).max - data
        )
    if (
        photometric == 3
        and colormap is not None
        and data.dtype.kind == "u"
        and "S" not in axes
    ):
        cmap = np.asarray(colormap)
        cmap = (
            (cmap >> 8).astype(np.uint8) if cmap.max() > 255 else cmap.astype(np.uint8)
        )
        data = np.moveaxis(cmap[:, np.clip(data, 0, cmap.shape[1] - 1)], 0, -1)
        axes += "S"
        photometric = 2

    # roles: channel axes (C, S), spatial (Y, X), everything else is a stack axis
    roles = []
    for letter in axes:
        roles.append(
            "c" if letter in "CS" else letter.lower() if letter in "YX" else "z"
        )
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

    if opts.exif_transpose:
        data = _orient_array(data, _tiff_orientation(series))
    return _Decoded(array=data, alpha=alpha, premultiplied=premultiplied)


# ----------------------------------------------------------------- numpy input


def _array_layout(name: str, arr: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``(array, stack_axes)`` with the array ordered as [stack...] + (H, W, C)."""
    if arr.ndim == 2:
        return arr[:, :, None], ()
    if arr.ndim == 3:
        first, last = arr.shape[0], arr.shape[2]
        if last <= MAX_GUESSED_CHANNELS and last <= first:
            return arr, ()
        if first <= MAX_GUESSED_CHANNELS:
            return np.moveaxis(arr, 0, -1), ()
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


def _check_array_dtype(
    name: str, arr: np.ndarray, *, convert: bool = True
) -> np.ndarray:
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


def _array_hw(name: str, arr: np.ndarray) -> tuple[int, int]:
    laid, stack = _array_layout(name, arr)
    off = len(stack)
    return int(laid.shape[off]), int(laid.shape[off + 1])


def _array_decode(name: str, arr: np.ndarray, opts: _Options) -> _Decoded:
    arr = _check_array_dtype(name, arr)
    laid, stack = _array_layout(name, arr)
    off = len(stack)
    h, w, c = laid.shape[off], laid.shape[off + 1], laid.shape[off + 2]
    _check_size(name, w, h, opts.max_pixels)
    if c == 0 or laid.size == 0:
        raise _fail(name, f"zero-sized image (array shape {arr.shape})")
    if stack:
        laid = _project(laid, stack, opts.projection)
    return _Decoded(array=laid)


# ----------------------------------------------------------------- shared steps


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


def _select(name: str, arr: np.ndarray, channels: tuple[int, ...] | None) -> np.ndarray:
    if channels is None:
        return arr
    n = arr.shape[2]
    bad = [i for i in channels if i >= n]
    if bad:
        raise _fail(
            name,
            f"channel index {bad[0]} out of range: the image has {n} channel{'s' if n != 1 else ''} "
            f"(valid 0..{n - 1})",
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


def _composite(
    colour: np.ndarray, alpha: np.ndarray, bg: tuple[int, int, int], premultiplied: bool
) -> np.ndarray:
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


def _normalize(
    name: str, arr: np.ndarray, mode: str | None, percentiles: tuple[float, float]
) -> np.ndarray:
    """Per-channel intensity normalisation of ``HxWxC`` data to uint8 (uint8 is untouched)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * np.uint8(255)
    is_float = arr.dtype.kind == "f"
    out = np.empty(arr.shape, dtype=np.uint8)
    for c in range(arr.shape[2]):
        out[:, :, c] = _normalize_channel(
            name, arr[:, :, c], mode, percentiles, is_float
        )
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
            mode = (
                "unit" if values.min() >= 0.0 and values.max() <= 1.0 else "percentile"
            )
        else:
            mode = "percentile"
    elif mode in ("none", None):
        mode = "unit" if is_float else "fixed"

    if mode == "unit":
        x = np.nan_to_num(
            ch.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0
        )
        return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    if mode == "fixed":
        if ch.dtype == np.uint16:  # x / 257, rounded, through a lookup table
            return _uint16_lut()[ch]
        info = np.iinfo(ch.dtype)
        scaled = (ch.astype(np.float64) - float(info.min)) * (
            255.0 / (float(info.max) - float(info.min))
        )
        return np.rint(scaled).astype(np.uint8)

    lo = hi = 0.0
    if mode == "percentile":
        sample = values
        if sample.size > _PERCENTILE_SAMPLE:
            step = math.ceil(math.sqrt(sample.size / _PERCENTILE_SAMPLE))
            sample = (
                sample[::step, ::step] if sample.ndim == 2 else sample[:: step * step]
            )
        lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    if mode == "minmax" or not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:  # constant channel
        return np.zeros(ch.shape, dtype=np.uint8)
    x = ch.astype(
        np.float32 if ch.dtype.itemsize <= (4 if is_float else 2) else np.float64
    )
    if finite is not None:
        x = np.nan_to_num(x, nan=lo, posinf=hi, neginf=lo)
    x = np.clip(x, lo, hi)
    x -= lo
    x *= 255.0 / (hi - lo)
    return np.rint(x).astype(np.uint8)


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
        return np.concatenate(
            [arr, np.zeros(arr.shape[:2] + (1,), dtype=arr.dtype)], axis=2
        )
    return arr[:, :, :3]


# --------------------------------------------------------------------------- pipeline


def _decode(src: _Source, opts: _Options) -> _Decoded:
    if src.kind == "array":
        assert src.array is not None
        return _array_decode(src.name, src.array, opts)
    if src.kind == "pil":
        assert src.pil is not None
        return _pil_decode(src.name, src.pil, opts, is_input=True)
    stream = src.stream
    assert stream is not None
    if _is_tiff(stream):
        start = stream.tell()
        try:
            return _tiff_decode(src.name, stream, opts)
        except _CodecMissing as missing:
            # a compression tifffile cannot decode without imagecodecs: let Pillow (libtiff) try
            stream.seek(start)
            try:
                return _pil_decode(
                    src.name, _pil_open(src.name, stream), opts, is_input=False
                )
            except BioresImageError as exc:
                raise _fail(
                    src.name,
                    f"unsupported TIFF compression (tifffile: {_one_line(missing)}; "
                    f"Pillow: {str(exc).removeprefix(f'cannot load image {src.name}: ')})",
                ) from exc
    return _pil_decode(src.name, _pil_open(src.name, stream), opts, is_input=False)


def _finish(
    name: str, dec: _Decoded, opts: _Options, *, rgb: bool, raw: bool
) -> np.ndarray:
    if dec.pil is not None:
        arr = _pil_rgb_array(dec)
    else:
        assert dec.array is not None
        arr = dec.array
    if raw:
        arr = _select(name, arr, opts.channels)
        if rgb:
            arr = _to_rgb(arr)
        return arr.astype(np.float32)
    if dec.alpha:
        colour = _normalize(name, arr[:, :, :-1], opts.normalize, opts.percentiles)
        arr = _composite(
            colour, _to_alpha_u8(arr[:, :, -1]), opts.background, dec.premultiplied
        )
    arr = _select(name, arr, opts.channels)
    arr = _normalize(name, arr, opts.normalize, opts.percentiles)
    if rgb:
        arr = _to_rgb(arr)
    return arr


def _guarded(name: str, func: Any) -> Any:
    try:
        return func()
    except BioresError:
        raise
    except MemoryError as exc:
        raise _fail(name, "not enough memory to decode the image") from exc
    except (
        Exception
    ) as exc:  # last resort: never leak a raw Pillow / tifffile / numpy error
        raise _fail(
            name, f"unexpected error while reading the image ({_exc_text(exc)})"
        ) from exc


def load_array(
    source: Any,
    *,
    keep_channels: bool = True,
    channels: int | Sequence[int] | None = None,
    projection: str = "max",
    normalize: str | None = "auto",
    percentiles: tuple[float, float] = (0.5, 99.5),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] | int | str = (255, 255, 255),
    exif_transpose: bool = True,
) -> np.ndarray:
    """Load ``source`` as an ``H x W x C`` array.

    ``C`` is the channel count after ``channels=`` selection when ``keep_channels`` is true
    (1 for grayscale, 3 for colour images with alpha composited), else 3 (RGB mapping, see
    the module docstring). The result is ``uint8``, or ``float32`` in the source's units
    for ``normalize="raw"``. Raises :class:`BioresImageError` on any failure.
    """
    name = _describe(source)
    opts = _check_options(
        name,
        channels=channels,
        projection=projection,
        normalize=normalize,
        percentiles=percentiles,
        max_pixels=max_pixels,
        background=background,
        exif_transpose=exif_transpose,
        allow_raw=True,
        rgb_output=not keep_channels,
    )

    def run() -> np.ndarray:
        with _open_source(source, name) as src:
            dec = _decode(src, opts)
        arr = _finish(
            name, dec, opts, rgb=not keep_channels, raw=opts.normalize == "raw"
        )
        if not arr.flags.writeable or (
            isinstance(source, np.ndarray) and np.may_share_memory(arr, source)
        ):
            arr = (
                arr.copy()
            )  # never hand back a read-only array or a view of the caller's array
        return np.ascontiguousarray(arr)

    return _guarded(name, run)


def load_image(
    source: Any,
    *,
    channels: int | Sequence[int] | None = None,
    projection: str = "max",
    normalize: str | None = "auto",
    percentiles: tuple[float, float] = (0.5, 99.5),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] | int | str = (255, 255, 255),
    exif_transpose: bool = True,
) -> Image.Image:
    """Load ``source`` as a decoded ``PIL.Image.Image`` in mode ``"RGB"``.

    See the module docstring for channel mapping, projection and normalisation rules.
    Raises :class:`BioresImageError` on any failure.
    """
    name = _describe(source)
    opts = _check_options(
        name,
        channels=channels,
        projection=projection,
        normalize=normalize,
        percentiles=percentiles,
        max_pixels=max_pixels,
        background=background,
        exif_transpose=exif_transpose,
        allow_raw=False,
        rgb_output=True,
    )

    def run() -> Image.Image:
        with _open_source(source, name) as src:
            dec = _decode(src, opts)
            if dec.pil is not None and opts.channels is None:
                im = dec.pil
                if im.mode != "RGB":
                    return im.convert("RGB")
                return im.copy() if dec.pil_is_input else im
        arr = _finish(name, dec, opts, rgb=True, raw=False)
        return Image.fromarray(np.ascontiguousarray(arr))

    return _guarded(name, run)


def image_size(
    source: Any,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    exif_transpose: bool = True,
) -> tuple[int, int]:
    """Return ``(width, height)`` of the image that :func:`load_image` would return.

    Reads only the header (Pillow lazy open / tifffile page shapes; no pixel decoding). Has
    the same guards as loading (missing, empty, not an image, zero-sized, decompression bomb),
    but cannot detect truncated pixel data.
    """
    name = _describe(source)
    opts = _check_options(
        name,
        channels=None,
        projection="max",
        normalize="auto",
        percentiles=(0.5, 99.5),
        max_pixels=max_pixels,
        background=(255, 255, 255),
        exif_transpose=exif_transpose,
        allow_raw=False,
        rgb_output=False,
    )

    def run() -> tuple[int, int]:
        with _open_source(source, name) as src:
            if src.kind == "array":
                assert src.array is not None
                arr = _check_array_dtype(name, src.array, convert=False)
                h, w = _array_hw(name, arr)
                _check_size(name, w, h, opts.max_pixels)
                if src.array.size == 0:
                    raise _fail(
                        name, f"zero-sized image (array shape {src.array.shape})"
                    )
                return w, h
            if src.kind == "pil":
                assert src.pil is not None
                w, h = src.pil.size
                _check_size(name, w, h, opts.max_pixels)
                if opts.exif_transpose and _pil_orientation(src.pil) >= 5:
                    w, h = h, w
                return w, h
            stream = src.stream
            assert stream is not None
            if _is_tiff(stream):
                return _tiff_size(name, stream, opts.max_pixels, opts.exif_transpose)
            return _pil_size(name, stream, opts.max_pixels, opts.exif_transpose)

    return _guarded(name, run)
