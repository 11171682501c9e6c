"""The one pixel step of the resolution layer: a policy's geometry before the processor.

:func:`apply_policy` caps the longest side (``downsample``: Lanczos over the whole footprint,
never upsampling) and squares fixed-size inputs (LLaVA's pad / crop / stretch); the processor
then resizes onto its patch grid. Sweeps, processors, both trainers and the LLaVA hooks call it.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from .levels import NATIVE, effective_size
from .policy import DownsamplePolicy, FixedPolicy, Policy

__all__ = ["apply_policy", "downsample", "resize_exact"]

#: Pillow's reducing gap for the cap: a box pre-reduction, then Lanczos on <= 3x the target.
REDUCING_GAP = 3.0


def resize_exact(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at exactly ``size`` with the cap's antialiased filter (a no-op at its own size)."""
    if tuple(size) == image.size:
        return image
    return image.resize(tuple(size), Image.LANCZOS, reducing_gap=REDUCING_GAP)


def downsample(image: Image.Image, level: int) -> Image.Image:
    """``image`` with its longest side capped at ``level`` (``NATIVE``: unchanged)."""
    if level == NATIVE:
        return image
    return resize_exact(image, effective_size(image.width, image.height, level))


def _square(image: Image.Image, policy: FixedPolicy, fill: Sequence[float]) -> Image.Image:
    w, h = image.size
    if policy.mode == "stretch":
        return image.resize((policy.size, policy.size), Image.BICUBIC)
    if policy.mode == "pad":  # LLaVA's expand2square, background = the processor's mean colour
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), tuple(int(round(float(m) * 255)) for m in fill))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        return canvas
    side = min(w, h)  # crop: the centre square
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def apply_policy(image: Image.Image, policy: Policy, *, fill: Sequence[float] = (0.0, 0.0, 0.0)) -> Image.Image:
    """``image`` as the processor receives it under ``policy`` (cap first, then squaring).

    ``fill`` is the pad colour of fixed ``pad`` policies as fractions (LLaVA: the image mean).
    """
    if isinstance(policy, DownsamplePolicy):
        image = resize_exact(image, policy.downsample_size(*image.size))
        policy = policy.then
    if isinstance(policy, FixedPolicy):
        image = _square(image, policy, fill)
    return image
