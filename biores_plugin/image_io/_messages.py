"""One-line failure messages that name the source of an image.

Every error of this package is built by :func:`_fail`, so all messages read
``cannot load image <source>: <problem>`` on a single line.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ..errors import BioresImageError

_MAX_MESSAGE = 300


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
    if type(source).__module__.startswith("torch") and hasattr(source, "shape"):
        return "<tensor>"
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return repr(name)
    if hasattr(source, "read"):
        return "<file>"
    return f"<{type(source).__name__}>"


def _fail(name: str, problem: str, cls: type[BioresImageError] = BioresImageError) -> BioresImageError:
    return cls(_one_line(f"cannot load image {name}: {problem}"))


def _exc_text(exc: BaseException) -> str:
    text = _one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
