"""What a model-side pixel budget costs: Qwen-VL's resize rule as pure functions.

Qwen2-VL / Qwen2.5-VL / Qwen3-VL processors (and vLLM, which runs the same HF processor through
``mm_processor_kwargs``) resize every image to a multiple of ``factor = patch_size * merge_size``
(28; Qwen3-VL 32) whose area lies within ``[min_pixels, max_pixels]``, keeping the aspect ratio
(transformers' ``smart_resize``). Each ``factor x factor`` cell is one visual token in the LLM.
Stated here with the one ``smart_resize`` of :mod:`.policy` (the same choice as transformers' on every
image where that one keeps its own budget), so a vLLM run's cost can be stated without loading a
processor; the tests check it against the HF processor on the same images.
"""

from __future__ import annotations

from .policy import smart_resize

__all__ = ["STUDY_BUDGETS", "STUDY_MIN_PIXELS", "max_tokens", "smart_resize", "visual_tokens"]

#: The study's budgets (cliangyu/med_eval): 224 x 224, ~1 MP, and 16384 tokens ("native").
STUDY_BUDGETS = (50_176, 1_000_000, 12_845_056)
#: med_eval's ``min_pixels`` default (one 28 x 28 cell): images are never upsampled.
STUDY_MIN_PIXELS = 28 * 28


def visual_tokens(
    width: int,
    height: int,
    max_pixels: int,
    min_pixels: int = STUDY_MIN_PIXELS,
    patch_size: int = 14,
    merge_size: int = 2,
) -> int:
    """Visual tokens one image costs the LLM at a pixel budget: ``(H / factor) * (W / factor)``."""
    factor = patch_size * merge_size
    h, w = smart_resize(height, width, factor, min_pixels, max_pixels)
    return (h // factor) * (w // factor)


def max_tokens(max_pixels: int, patch_size: int = 14, merge_size: int = 2) -> int:
    """The most visual tokens any image can cost at ``max_pixels``: ``floor(max_pixels / factor^2)``."""
    return max_pixels // (patch_size * merge_size) ** 2
