"""Guards shared by all readers: image size limits and strict truncation.

``width * height`` is checked against ``max_pixels`` before any pixel is decoded, and
Pillow's ``LOAD_TRUNCATED_IMAGES`` flag is forced off while this package decodes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from PIL import ImageFile

from ._messages import _fail


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
