"""Load any biomedical image into a checked RGB image or channel array.

:func:`load_image` returns a PIL ``"RGB"`` image, :func:`load_array` an ``H x W x C`` array
and :func:`image_size` reads only the header; every failure raises a one-line
:class:`biores_plugin.errors.BioresImageError`. Rules for ambiguous cases: docs/image_loading.md.
"""

from __future__ import annotations

from .dicom import is_dicom
from .meta import image_meta
from .options import (
    DEFAULT_MAX_PIXELS,
    MAX_GUESSED_CHANNELS,
    MAX_STACK_FACTOR,
    ImageOptionError,
)
from .pipeline import image_size, load_array, load_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_GUESSED_CHANNELS",
    "MAX_STACK_FACTOR",
    "ImageOptionError",
    "image_meta",
    "image_size",
    "is_dicom",
    "load_array",
    "load_image",
]
