"""Resolution policies: pure functions of an image size, no pixels and no torch.

A policy answers ``resize_target(width, height)`` (the model-input size) and
``visual_tokens(width, height)`` without touching pixels: ``fixed`` (LLaVA-1.5 pad / crop /
stretch), ``anyres`` (LLaVA-NeXT / OneVision), ``native`` (Qwen2-VL ``smart_resize``) and
``downsample`` (a longest-side cap, then another policy). See ``docs/resolution.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Union

from ..errors import BioresBudgetError, BioresConfigError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_PIXELS",
    "MAX_ASPECT_RATIO",
    "FixedPolicy",
    "AnyResPolicy",
    "NativePolicy",
    "DownsamplePolicy",
    "Policy",
    "smart_resize",
    "select_best_resolution",
    "anyres_feature_count",
    "parse_policy",
    "policy_from_dict",
]

#: The native pixel budget's defaults (Qwen2-VL's ``Qwen2VLImageProcessor``): the one place they live.
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 28 * 28 * 1280

#: Largest long/short side ratio a patch grid can represent (Qwen2-VL's limit).
MAX_ASPECT_RATIO = 200

#: LLaVA-NeXT's default grid pinpoints, as ``[height, width]`` pairs (HF config order).
LLAVA_NEXT_PINPOINTS: tuple[tuple[int, int], ...] = (
    (336, 672),
    (672, 336),
    (672, 672),
    (1008, 336),
    (336, 1008),
)


def _check_size(width: int, height: int) -> tuple[int, int]:
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError):
        raise BioresConfigError(f"image size must be two integers, got {width!r} x {height!r}") from None
    if w != width or h != height or w <= 0 or h <= 0:
        raise BioresConfigError(f"image size must be positive integers, got {width!r} x {height!r}")
    return w, h


# --------------------------------------------------------------------------- geometry


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Qwen2-VL's ``smart_resize``: ``(height, width)`` -> ``(height', width')``.

    Both sides become multiples of ``factor``, the pixel count lands in ``[min_pixels,
    max_pixels]`` and the aspect ratio is kept as closely as the grid allows. Same choice as
    ``transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize`` on every input
    where that one honours its own budget. Where it would silently exceed ``max_pixels``:
    when only the upscale to ``min_pixels`` overshoots, the rounded size is kept (``min_pixels``
    is best effort and the largest grid size under it is used); when even one grid row cannot fit
    (extreme aspect ratios, tiny budgets) this raises :class:`BioresBudgetError`.
    """
    width, height = _check_size(width, height)
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise BioresBudgetError(
            f"aspect ratio {max(height, width) / min(height, width):.1f} of a {width}x{height} image "
            f"exceeds {MAX_ASPECT_RATIO}; crop or tile it first"
        )
    if min_pixels > max_pixels:
        raise BioresConfigError(f"min_pixels ({min_pixels}) is larger than max_pixels ({max_pixels})")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        up_h = math.ceil(height * beta / factor) * factor
        up_w = math.ceil(width * beta / factor) * factor
        # min_pixels is best effort: when reaching it would break max_pixels, stay on the
        # rounded grid (transformers would silently exceed max_pixels here).
        if up_h * up_w <= max_pixels:
            h_bar, w_bar = up_h, up_w
        else:  # the largest grid size below the upscale target (always <= min_pixels <= max_pixels)
            h_bar = max(factor, math.floor(height * beta / factor) * factor)
            w_bar = max(factor, math.floor(width * beta / factor) * factor)
    if h_bar * w_bar > max_pixels:
        raise BioresBudgetError(
            f"a {width}x{height} image cannot fit max_pixels={max_pixels} on a {factor}-pixel grid "
            f"(needs at least {h_bar * w_bar}); raise max_pixels or crop the image"
        )
    if max(h_bar, w_bar) / min(h_bar, w_bar) > MAX_ASPECT_RATIO:  # keeps the policy idempotent
        raise BioresBudgetError(
            f"a {width}x{height} image becomes {w_bar}x{h_bar} on a {factor}-pixel grid, an aspect ratio "
            f"above {MAX_ASPECT_RATIO}; crop or tile it first"
        )
    return h_bar, w_bar


def select_best_resolution(
    original_size: Sequence[int], possible_resolutions: Sequence[Sequence[int]]
) -> tuple[int, int]:
    """LLaVA-NeXT's choice of grid resolution, in HF's ``(height, width)`` order.

    Maximises the effective (downscaled, never upscaled) resolution, breaking ties by the
    least wasted area; the first candidate wins exact ties. Identical to
    ``transformers.image_processing_utils.select_best_resolution``.
    """
    original_height, original_width = original_size
    best_fit: tuple[int, int] | None = None
    best_effective = 0
    least_wasted = float("inf")
    for height, width in possible_resolutions:
        scale = min(width / original_width, height / original_height)
        effective = min(int(original_width * scale) * int(original_height * scale), original_width * original_height)
        wasted = width * height - effective
        if effective > best_effective or (effective == best_effective and wasted < least_wasted):
            best_effective, least_wasted, best_fit = effective, wasted, (int(height), int(width))
    if best_fit is None:
        raise BioresConfigError("image_grid_pinpoints is empty")
    return best_fit


def anyres_feature_count(
    orig_height: int,
    orig_width: int,
    best_height: int,
    best_width: int,
    base: int,
    patch_size: int,
    max_num_patches: int | None = None,
) -> tuple[int, int]:
    """Unpadded grid features and newline tokens of an anyres image (HF ``LlavaNextProcessor``).

    With ``max_num_patches`` (LLaVA-OneVision's ``anyres_max_N``) the unpadded feature map is
    shrunk when it holds more than ``N`` base images' worth of tokens.
    """
    side = base // patch_size
    current_height = side * (best_height // base)
    current_width = side * (best_width // base)
    if orig_width / orig_height > current_width / current_height:
        new_height = int(round(orig_height * (current_width / orig_width), 7))
        current_height -= ((current_height - new_height) // 2) * 2
    else:
        new_width = int(round(orig_width * (current_height / orig_height), 7))
        current_width -= ((current_width - new_width) // 2) * 2
    unpadded, newlines = current_height * current_width, current_height
    if max_num_patches is not None:
        ratio = math.sqrt(current_height * current_width / (max_num_patches * side**2))
        if ratio > 1.1:
            unpadded = int(current_height // ratio) * int(current_width // ratio)
            newlines = int(current_height // ratio)
    return unpadded, newlines


# --------------------------------------------------------------------------- policies


class _PolicyBase:
    kind: str = ""

    def resize_target(self, width: int, height: int) -> tuple[int, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def visual_tokens(self, width: int, height: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _PolicyBase):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[f.name] = value
        return out

    @property
    def name(self) -> str:
        """Short human label (``native``, ``pad336``, ``anyres_max_9``, ``448+native``...)."""
        return self.kind


@dataclass(frozen=True)
class FixedPolicy(_PolicyBase):
    """One square input size, LLaVA-1.5 style."""

    size: int = 336
    mode: str = "pad"
    patch_size: int = 14
    kind: str = field(default="fixed", init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("pad", "crop", "stretch"):
            raise BioresConfigError(f"fixed policy mode must be pad, crop or stretch, got {self.mode!r}")
        if self.size <= 0 or self.size % self.patch_size:
            raise BioresConfigError(
                f"fixed size {self.size} must be a positive multiple of patch_size {self.patch_size}"
            )

    def resize_target(self, width: int, height: int) -> tuple[int, int]:
        _check_size(width, height)
        return self.size, self.size

    def content_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Where the image's pixels land inside the square: ``(left, top, width, height)``."""
        width, height = _check_size(width, height)
        if self.mode == "stretch":
            return 0, 0, self.size, self.size
        if self.mode == "crop":  # shortest edge fills the square, the rest is cut off
            scale = self.size / min(width, height)
        else:  # pad: longest edge fills the square, the rest is mean colour
            scale = self.size / max(width, height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        return (self.size - w) // 2, (self.size - h) // 2, w, h

    def visual_tokens(self, width: int, height: int) -> int:
        _check_size(width, height)
        return (self.size // self.patch_size) ** 2

    @property
    def name(self) -> str:
        return f"{self.mode}{self.size}"


@dataclass(frozen=True)
class AnyResPolicy(_PolicyBase):
    """LLaVA-NeXT anyres: a base image plus a grid of base-size crops at the best pinpoint."""

    grid_pinpoints: tuple[tuple[int, int], ...] = LLAVA_NEXT_PINPOINTS
    base_size: int = 336
    patch_size: int = 14
    max_num_patches: int | None = None  # anyres_max_N
    kind: str = field(default="anyres", init=False, repr=False)

    def __post_init__(self) -> None:
        pins = tuple((int(h), int(w)) for h, w in self.grid_pinpoints)
        if not pins:
            raise BioresConfigError("image_grid_pinpoints is empty")
        for h, w in pins:
            if h <= 0 or w <= 0 or h % self.base_size or w % self.base_size:
                raise BioresConfigError(
                    f"grid pinpoint {h}x{w} is not a positive multiple of the base size {self.base_size}"
                )
        object.__setattr__(self, "grid_pinpoints", pins)
        if self.max_num_patches is not None and self.max_num_patches < 1:
            raise BioresConfigError(f"anyres_max_N needs N >= 1, got {self.max_num_patches}")

    def best_resolution(self, width: int, height: int) -> tuple[int, int]:
        width, height = _check_size(width, height)
        bh, bw = select_best_resolution((height, width), self.grid_pinpoints)
        return bw, bh

    def resize_target(self, width: int, height: int) -> tuple[int, int]:
        return self.best_resolution(width, height)

    def num_crops(self, width: int, height: int) -> int:
        """Crops the processor emits: the base image plus the grid cells."""
        bw, bh = self.best_resolution(width, height)
        return 1 + (bw // self.base_size) * (bh // self.base_size)

    def visual_tokens(self, width: int, height: int) -> int:
        bw, bh = self.best_resolution(width, height)
        unpadded, newlines = anyres_feature_count(
            height, width, bh, bw, self.base_size, self.patch_size, self.max_num_patches
        )
        return (self.base_size // self.patch_size) ** 2 + unpadded + newlines

    @property
    def name(self) -> str:
        return "anyres" if self.max_num_patches is None else f"anyres_max_{self.max_num_patches}"


@dataclass(frozen=True)
class NativePolicy(_PolicyBase):
    """Native resolution on a ``patch_size * merge_size`` grid within a pixel budget."""

    patch_size: int = 14
    merge_size: int = 1
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    kind: str = field(default="native", init=False, repr=False)

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.merge_size < 1:
            raise BioresConfigError("patch_size and merge_size must be >= 1")
        if self.min_pixels < 1 or self.max_pixels < 1:
            raise BioresConfigError("min_pixels and max_pixels must be >= 1")
        if self.min_pixels > self.max_pixels:
            raise BioresConfigError(f"min_pixels ({self.min_pixels}) is larger than max_pixels ({self.max_pixels})")
        if self.max_pixels < self.factor**2:
            raise BioresBudgetError(
                f"max_pixels={self.max_pixels} is below one {self.factor}x{self.factor} grid cell; no image can meet it"
            )

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def resize_target(self, width: int, height: int) -> tuple[int, int]:
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return w, h

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """Patch grid ``(rows, cols)`` before any token merge."""
        w, h = self.resize_target(width, height)
        return h // self.patch_size, w // self.patch_size

    def visual_tokens(self, width: int, height: int) -> int:
        rows, cols = self.grid(width, height)
        return rows * cols // (self.merge_size**2)


@dataclass(frozen=True)
class DownsamplePolicy(_PolicyBase):
    """Cap an image's longest side and/or pixel count (never upsample), then apply ``then``."""

    max_side: int | None = None
    max_pixels: int | None = None
    then: Union[NativePolicy, FixedPolicy, AnyResPolicy] = field(default_factory=NativePolicy)
    kind: str = field(default="downsample", init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_side is None and self.max_pixels is None:
            raise BioresConfigError("downsample needs max_side or max_pixels")
        if (self.max_side is not None and self.max_side < 1) or (self.max_pixels is not None and self.max_pixels < 1):
            raise BioresConfigError("downsample max_side / max_pixels must be >= 1")
        if isinstance(self.then, DownsamplePolicy):
            raise BioresConfigError("downsample cannot be followed by another downsample")

    def downsample_size(self, width: int, height: int) -> tuple[int, int]:
        """The image size after the cap alone (what the sweep hands to the model)."""
        width, height = _check_size(width, height)
        scale = 1.0
        if self.max_side is not None:
            scale = min(scale, self.max_side / max(width, height))
        if self.max_pixels is not None:
            scale = min(scale, math.sqrt(self.max_pixels / (width * height)))
        if scale >= 1.0:
            return width, height
        w = max(1, min(width, round(width * scale)))
        h = max(1, min(height, round(height * scale)))
        if self.max_side is not None:  # rounding must never break the cap
            w, h = min(w, self.max_side), min(h, self.max_side)
        if self.max_pixels is not None:
            while w * h > self.max_pixels:
                if w >= h:
                    w -= 1
                else:
                    h -= 1
        return w, h

    def resize_target(self, width: int, height: int) -> tuple[int, int]:
        return self.then.resize_target(*self.downsample_size(width, height))

    def visual_tokens(self, width: int, height: int) -> int:
        return self.then.visual_tokens(*self.downsample_size(width, height))

    @property
    def name(self) -> str:
        cap = f"{self.max_side}" if self.max_side is not None else f"{self.max_pixels}px"
        return f"{cap}+{self.then.name}"


Policy = Union[FixedPolicy, AnyResPolicy, NativePolicy, DownsamplePolicy]

_KINDS = {"fixed": FixedPolicy, "anyres": AnyResPolicy, "native": NativePolicy, "downsample": DownsamplePolicy}


def policy_from_dict(data: dict[str, Any]) -> Policy:
    """Inverse of ``policy.to_dict()``."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in _KINDS:
        raise BioresConfigError(f"unknown policy kind {kind!r}; expected one of {sorted(_KINDS)}")
    cls = _KINDS[kind]
    names = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BioresConfigError(f"unknown {kind} policy field(s): {', '.join(unknown)}")
    if kind == "downsample" and isinstance(data.get("then"), dict):
        data["then"] = policy_from_dict(data["then"])
    if kind == "anyres" and "grid_pinpoints" in data:
        data["grid_pinpoints"] = tuple(tuple(p) for p in data["grid_pinpoints"])
    return cls(**data)


_ANYRES_MAX = re.compile(r"^anyres_max_(\d+)$")


def parse_policy(spec: Union[str, int, Policy], **options: Any) -> Policy:
    """Build a policy from a LLaVA-style string.

    ``native``; ``pad`` / ``crop`` / ``square`` (LLaVA's name for crop) / ``stretch``, with an
    optional size (``pad448``, ``pad:448``); ``anyres``, ``anyres_max_9``; a bare integer or
    ``downsample:448`` (longest side, then ``native``), ``downsample:448:pad`` (then ``pad``).
    Keyword options fill the matching fields (``patch_size``, ``merge_size``, ``min_pixels``,
    ``max_pixels``, ``size``, ``grid_pinpoints``, ``base_size``...); options that the chosen
    policy does not have are ignored only when they are ``None``.
    """
    if isinstance(spec, _PolicyBase):
        return spec  # type: ignore[return-value]
    text = str(spec).strip().lower()
    options = {k: v for k, v in options.items() if v is not None}

    def build(cls: type, **fixed: Any) -> Any:
        names = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(options) - names - {"then"})
        if unknown:
            raise BioresConfigError(f"policy {text!r} has no option(s) {', '.join(unknown)}")
        kwargs = {k: v for k, v in options.items() if k in names}
        kwargs.update(fixed)
        if "grid_pinpoints" in kwargs:
            kwargs["grid_pinpoints"] = tuple(tuple(p) for p in kwargs["grid_pinpoints"])
        return cls(**kwargs)

    if text == "native":
        return build(NativePolicy)
    m = re.fullmatch(r"(pad|crop|square|stretch)(?::?(\d+))?", text)
    if m:
        mode = "crop" if m.group(1) == "square" else m.group(1)
        fixed: dict[str, Any] = {"mode": mode}
        if m.group(2):
            fixed["size"] = int(m.group(2))
        return build(FixedPolicy, **fixed)
    if text == "anyres":
        return build(AnyResPolicy)
    m = _ANYRES_MAX.match(text)
    if m:
        return build(AnyResPolicy, max_num_patches=int(m.group(1)))
    m = re.fullmatch(r"(?:downsample:)?(\d+)(?::(\w+))?", text)
    if m:
        then = options.pop("then", None) or parse_policy(m.group(2) or "native", **options)
        return DownsamplePolicy(max_side=int(m.group(1)), then=then)
    raise BioresConfigError(
        f"unknown image_aspect_ratio / policy {spec!r}; expected native, pad, crop, square, stretch, "
        f"anyres, anyres_max_N or a longest-side size such as 448"
    )
