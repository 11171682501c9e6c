"""The biores flags of ``python -m biores_plugin.original_llava.train``: LLaVA's aspect ratios plus native.

The values are checked by the shared :class:`~biores_plugin.resolution.ResolutionConfig` (the
same rules, defaults and mixed-resolution draw as ``biores-train``); this module adds only what
is LLaVA's own: which ``--image_aspect_ratio`` names its code paths know. Nothing here imports
torch, transformers or llava, so a bad flag fails before anything heavy loads.
"""

from __future__ import annotations

import re
from typing import Any

from biores_plugin.errors import BioresConfigError
from biores_plugin.resolution import NativePolicy, ResolutionConfig

__all__ = ["LLAVA_ASPECT_RATIOS", "check_aspect_ratio", "check_resolution_flags", "inference_policy"]

#: ``image_aspect_ratio`` values the original LLaVA / LLaVA-NeXT code paths understand, plus ``native``.
LLAVA_ASPECT_RATIOS = ("square", "pad", "anyres", "anyres_max_N", "native")
_ANYRES_MAX = re.compile(r"^anyres_max_[1-9]\d*$")


def check_aspect_ratio(value: Any) -> str:
    """The ``--image_aspect_ratio`` value, or a one-line error naming the accepted ones."""
    text = str(value).strip()
    if text in ("square", "pad", "anyres", "native") or _ANYRES_MAX.match(text):
        return text
    raise BioresConfigError(
        f"--image_aspect_ratio {value!r} is not supported; use one of {', '.join(LLAVA_ASPECT_RATIOS)}"
    )


def check_resolution_flags(
    image_aspect_ratio: Any,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    mixed_resolution: str | None = None,
    mm_patch_merge_type: str | None = "flat",
    patch_size: int | None = None,
) -> ResolutionConfig | None:
    """The session's resolution config for ``native`` (None for LLaVA's own aspect ratios).

    One-line :class:`BioresConfigError` on an unknown aspect ratio, native-only flags elsewhere, a
    bad pixel budget, a malformed ``--mixed_resolution``, or ``native`` with a spatial patch merge.
    LLaVA's projector takes every patch token, so ``merge_size`` is 1.
    """
    aspect = check_aspect_ratio(image_aspect_ratio)
    config = ResolutionConfig(
        image_aspect_ratio=aspect,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        mixed_resolution=mixed_resolution,
        patch_size=patch_size,
    )
    if aspect != "native":
        return None
    merge = str(mm_patch_merge_type or "flat")
    if merge != "flat":
        raise BioresConfigError(
            f"--mm_patch_merge_type {merge!r} needs anyres crops; --image_aspect_ratio native uses 'flat'"
        )
    return config


def inference_policy(config_dict: dict[str, Any] | None, patch_size: int, **fallback: Any) -> NativePolicy:
    """The native policy a checkpoint's ``config.biores`` stores (or built from ``fallback`` flags)."""
    if config_dict:
        config = ResolutionConfig.from_dict({**dict(config_dict), "image_aspect_ratio": "native"})
    else:
        config = ResolutionConfig(image_aspect_ratio="native", **{k: v for k, v in fallback.items() if v is not None})
    return config.resolved(config.patch_size or patch_size).base_policy()
