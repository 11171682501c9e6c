"""What a loader reads from (paths, bytes, files, PIL images, arrays) and what it decodes to.

:func:`_open_source` turns any accepted ``source`` into a :class:`_Source`; every reader
returns a :class:`_Decoded`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from ..errors import BioresError
from ._messages import _exc_text, _fail
from .tensors import _is_tensor, _tensor_hwc

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass
class _Source:
    name: str
    kind: str  # "stream" | "pil" | "array"
    stream: BinaryIO | None = None
    pil: Image.Image | None = None
    array: np.ndarray | None = None
    hwc: bool = False  # the array is already H x W x C (a tensor's layout is decided on entry)


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
            raise _fail(name, f"cannot open file ({exc.strerror or _exc_text(exc)})") from exc
        with fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise _fail(name, "empty file (0 bytes)")
            yield _Source(name, "stream", stream=fh)
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = source if isinstance(source, bytes) else bytes(source)  # memoryview of any shape too
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
    if _is_tensor(source):
        yield _Source(name, "array", array=_tensor_hwc(name, source), hwc=True)
        return
    if hasattr(source, "read") and callable(source.read):
        if isinstance(source, io.TextIOBase):
            raise _fail(
                name,
                "file-like object is opened in text mode; open it in binary mode ('rb')",
            )
        stream: BinaryIO
        try:
            seekable = bool(source.seekable()) if hasattr(source, "seekable") else hasattr(source, "seek")
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
            raise _fail(name, f"cannot read file-like object ({_exc_text(exc)})") from exc
        if not isinstance(size, int) or size == 0:
            raise _fail(name, "empty file (0 bytes)")
        yield _Source(name, "stream", stream=stream)
        return
    raise _fail(
        name,
        f"unsupported source type {type(source).__name__!r} "
        "(expected a path, bytes, a binary file-like object, a PIL image, a numpy array or a tensor)",
    )


def _is_tiff(stream: BinaryIO) -> bool:
    pos = stream.tell()
    head = stream.read(4)
    stream.seek(pos)
    return bytes(head) in _TIFF_MAGIC


@dataclass
class _Decoded:
    """Pixels as ``H x W x C`` (``alpha`` True: the last channel is alpha) or a PIL image."""

    array: np.ndarray | None = None
    alpha: bool = False
    premultiplied: bool = False
    pil: Image.Image | None = None  # 8-bit image that converts straight to RGB (fast path)
    pil_is_input: bool = False
    #: micrometres per pixel of the decoded pixels (None: unknown)
    mpp: float | None = None
    #: the decoder already applied ``region=`` (and chose a pyramid level)
    cropped: bool = False
    #: the size the pixels must be resampled to (``mpp=``), decided by the decoder
    out_size: tuple[int, int] | None = None
