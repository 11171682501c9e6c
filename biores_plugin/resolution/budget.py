"""What a model-side pixel budget costs: Qwen-VL's resize rule as pure functions.

Qwen2-VL / Qwen2.5-VL / Qwen3-VL processors (and vLLM, which runs the same HF processor through
``mm_processor_kwargs``) resize every image to a multiple of ``factor = patch_size * merge_size``
(28; Qwen3-VL 32) whose area lies within ``[min_pixels, max_pixels]``, keeping the aspect ratio
(transformers' ``smart_resize``). Each ``factor x factor`` cell is one visual token in the LLM.
Written out here so a vLLM run's cost can be stated without loading a processor; the tests check
it against the HF processor on the same images.
"""

from __future__ import annotations

import math

from ..errors import BioresConfigError

#: The study's budgets (cliangyu/med_eval): 224 x 224, ~1 MP, and 16384 tokens ("native").
STUDY_BUDGETS = (50_176, 1_000_000, 12_845_056)
#: med_eval's ``min_pixels`` default (one 28 x 28 cell): images are never upsampled.
STUDY_MIN_PIXELS = 28 * 28


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 14 * 14 * 4 * 1280
) -> tuple[int, int]:
    """``(height, width)`` the processor resizes an image to (transformers' rule, verbatim in effect)."""
    if height < 1 or width < 1:
        raise BioresConfigError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise BioresConfigError(f"aspect ratio must be below 200, got {width}x{height}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


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
