"""The loaders: :func:`load_array`, :func:`load_image` and :func:`image_size`.

Each one checks its options, opens the source, hands it to the right reader (numpy,
Pillow or tifffile) and finishes the pixels with the intensity steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from ..errors import BioresError, BioresImageError
from ._messages import _describe, _exc_text, _fail, _one_line
from .arrays import _array_decode, _array_hw
from .dicom import _dicom_decode, _dicom_size, _is_dicom
from .guards import _check_size
from .intensity import (
    _clip_raw,
    _composite,
    _nonfinite,
    _normalize,
    _select,
    _to_alpha_u8,
    _to_rgb,
)
from .options import (
    _OPTION_NAMES,
    DEFAULT_MAX_PIXELS,
    _check_options,
    _LoadOptions,
    _Options,
)
from .physical import _apply_physical
from .pil import (
    _pil_check_open,
    _pil_decode,
    _pil_open,
    _pil_rgb_array,
    _pil_size,
    _pil_size_orientation,
    _png_verify,
)
from .sources import _Decoded, _is_tiff, _open_source, _Source
from .tiff import _CodecMissing, _tiff_decode, _tiff_size

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

_T = TypeVar("_T")


def _decode(src: _Source, opts: _Options) -> _Decoded:
    stream = src.stream
    if stream is not None and _is_dicom(stream):
        return _apply_physical(src.name, _dicom_decode(src.name, stream, opts), opts)
    if opts.frame is not None or opts.window is not None:
        given = "frame=" if opts.frame is not None else "window="
        raise _fail(src.name, f"{given} applies to DICOM files only, and this is not one")
    return _apply_physical(src.name, _decode_other(src, opts), opts)


def _decode_other(src: _Source, opts: _Options) -> _Decoded:
    if src.kind == "array":
        return _array_decode(src, opts)
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
                return _pil_decode(src.name, _pil_open(src.name, stream), opts, is_input=False)
            except BioresImageError as exc:
                raise _fail(
                    src.name,
                    f"unsupported TIFF compression (tifffile: {_one_line(missing)}; "
                    f"Pillow: {str(exc).removeprefix(f'cannot load image {src.name}: ')})",
                ) from exc
    _png_verify(src.name, stream)
    return _pil_decode(src.name, _pil_open(src.name, stream), opts, is_input=False)


def _finish(name: str, dec: _Decoded, opts: _Options, *, rgb: bool, raw: bool) -> np.ndarray:
    if dec.pil is not None:
        arr = _pil_rgb_array(dec)
    else:
        assert dec.array is not None
        arr = _nonfinite(name, dec.array, opts.nonfinite)
    if raw:
        arr = _select(name, arr, opts.channels)
        if rgb:
            arr = _to_rgb(arr)
        arr = arr.astype(np.float32)
        return _clip_raw(name, arr) if opts.nonfinite == "clip" else arr
    if dec.alpha:
        colour = _normalize(name, arr[:, :, :-1], opts.normalize, opts.percentiles)
        arr = _composite(colour, _to_alpha_u8(arr[:, :, -1]), opts.background, dec.premultiplied)
    arr = _select(name, arr, opts.channels)
    arr = _normalize(name, arr, opts.normalize, opts.percentiles)
    if rgb:
        arr = _to_rgb(arr)
    return arr


def _guarded(name: str, func: Callable[[], _T]) -> _T:
    try:
        return func()
    except BioresError:
        raise
    except MemoryError as exc:
        raise _fail(name, "not enough memory to decode the image") from exc
    except Exception as exc:  # last resort: never leak a raw Pillow / tifffile / numpy error
        raise _fail(name, f"unexpected error while reading the image ({_exc_text(exc)})") from exc


_DEFAULTS = _check_options("<defaults>", allow_raw=False, rgb_output=True)


def _run(
    func: str,
    source: Any,
    options: Mapping[str, Any],
    step: Callable[[str, _Source, _Options], _T],
    *,
    allow_raw: bool,
    rgb_output: bool,
) -> _T:
    """Check ``options`` (as ``func`` would), open ``source`` and apply ``step`` to it."""
    for key in options:  # the TypeError of an explicit signature
        if key not in _OPTION_NAMES:
            raise TypeError(f"{func}() got an unexpected keyword argument {key!r}")
    name = _describe(source)
    opts = (
        _check_options(name, allow_raw=allow_raw, rgb_output=rgb_output, **options)
        if options
        else _DEFAULTS  # the defaults are valid for every loader: checked once
    )

    def run() -> _T:
        with _open_source(source, name) as src:
            return step(name, src, opts)

    return _guarded(name, run)


def load_array(
    source: Any,
    *,
    keep_channels: bool = True,
    copy: bool = True,
    **options: Unpack[_LoadOptions],
) -> np.ndarray:
    """Load ``source`` as an ``H x W x C`` array.

    ``C`` is the channel count after ``channels=`` selection when ``keep_channels`` is true
    (1 for grayscale, 3 for colour images with alpha composited), else 3 (RGB mapping, see
    docs/image_loading.md). The result is ``uint8``, or ``float32`` in the source's units
    for ``normalize="raw"``. ``copy=False`` copies only when needed: the result may then be
    read-only or share memory with ``source`` (never negative strides). ``options`` are those
    of :func:`load_image`. Raises :class:`BioresImageError` on any failure.
    """

    def step(name: str, src: _Source, opts: _Options) -> np.ndarray:
        dec = _decode(src, opts)
        arr = _finish(name, dec, opts, rgb=not keep_channels, raw=opts.normalize == "raw")
        if not copy:
            return arr if min(arr.strides, default=0) >= 0 else arr.copy()
        if not arr.flags.writeable or (src.array is not None and np.may_share_memory(arr, src.array)):
            arr = arr.copy()  # never hand back a read-only array or a view of the caller's data
        return np.ascontiguousarray(arr)

    return _run(
        "load_array",
        source,
        options,
        step,
        allow_raw=True,
        rgb_output=not keep_channels,
    )


def load_image(source: Any, *, copy: bool = True, **options: Unpack[_LoadOptions]) -> Image.Image:
    """Load ``source`` as a decoded ``PIL.Image.Image`` in mode ``"RGB"``.

    Keyword options and their defaults: ``channels=None``, ``projection="max"``,
    ``normalize="auto"``, ``percentiles=(0.5, 99.5)``, ``max_pixels=DEFAULT_MAX_PIXELS``,
    ``background=(255, 255, 255)``, ``exif_transpose=True``, ``nonfinite="error"``. See
    docs/image_loading.md for channel mapping, projection and normalisation rules.
    ``copy=False`` returns a PIL ``source`` itself when it is already a checked RGB image
    (loaded, upright). Raises :class:`BioresImageError` on any failure.
    """

    def step(name: str, src: _Source, opts: _Options) -> Image.Image:
        return _image_step(name, src, opts, copy=copy)

    return _run("load_image", source, options, step, allow_raw=False, rgb_output=True)


def _image_step(name: str, src: _Source, opts: _Options, *, copy: bool = True) -> Image.Image:
    dec = _decode(src, opts)
    if dec.pil is not None and opts.channels is None:
        im = dec.pil
        if im.mode != "RGB":
            return im.convert("RGB")
        return im.copy() if dec.pil_is_input and copy else im
    arr = _finish(name, dec, opts, rgb=True, raw=False)
    return Image.fromarray(np.ascontiguousarray(arr))


def image_size(
    source: Any,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    exif_transpose: bool = True,
    verify: bool = False,
) -> tuple[int, int]:
    """Return ``(width, height)`` of the image that :func:`load_image` would return.

    By default reads only the header (Pillow lazy open / tifffile page shapes; no pixel
    decoding), with the same guards as loading (missing, empty, not an image, zero-sized,
    decompression bomb, closed PIL image) but blind to truncated pixel data. ``verify=True``
    decodes the pixels as :func:`load_image` does (its defaults), so that a truncated or
    corrupt image is an error here too.
    """
    options = {"max_pixels": max_pixels, "exif_transpose": exif_transpose}
    step = _verified_size if verify else _size_step
    return _run("image_size", source, options, step, allow_raw=False, rgb_output=False)


def _verified_size(name: str, src: _Source, opts: _Options) -> tuple[int, int]:
    return _image_step(name, src, opts, copy=False).size


def _size_step(name: str, src: _Source, opts: _Options) -> tuple[int, int]:
    if src.kind == "array":
        assert src.array is not None
        h, w = _array_hw(src)
        _check_size(name, w, h, opts.max_pixels)
        if src.array.size == 0:
            raise _fail(name, f"zero-sized image (array shape {src.array.shape})")
        return w, h
    if src.kind == "pil":
        assert src.pil is not None
        w, h = src.pil.size
        _check_size(name, w, h, opts.max_pixels)
        _pil_check_open(name, src.pil)
        if opts.exif_transpose and _pil_size_orientation(src.pil) >= 5:
            w, h = h, w
        return w, h
    stream = src.stream
    assert stream is not None
    if _is_dicom(stream):
        return _dicom_size(name, stream, opts.max_pixels)
    if _is_tiff(stream):
        return _tiff_size(name, stream, opts.max_pixels, opts.exif_transpose)
    return _pil_size(name, stream, opts.max_pixels, opts.exif_transpose)
