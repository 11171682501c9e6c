"""The biores resolution flags of ``python -m biores_plugin.llava.train``: validation and the mixed-resolution draw.

Nothing here imports ``llava`` or loads a model, so every check runs (and fails with a one-line
:class:`~biores_plugin.errors.BioresConfigError`) before any weights are touched.

Flags (added to LLaVA's ``DataArguments``):

``--image_aspect_ratio``  LLaVA's ``square`` / ``pad`` / ``anyres`` / ``anyres_max_N``, or ``native`` (new).
``--min_pixels`` / ``--max_pixels``  native pixel budget (native only).
``--mixed_resolution``    e.g. ``native:0.5,448:0.25,224:0.25`` (native only): every training sample is drawn,
                          reproducibly from ``(--seed, sample index)``, at one of those resolutions; ``N`` means
                          "longest side capped at N pixels (never upsampled), then the native policy".
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from biores_plugin.errors import BioresConfigError
from biores_plugin.policy import DownsamplePolicy, NativePolicy, Policy, parse_policy

__all__ = [
    "LLAVA_ASPECT_RATIOS",
    "Draw",
    "MixedResolution",
    "check_aspect_ratio",
    "check_resolution_flags",
    "validate_resolution_flags",
]

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


@dataclass(frozen=True)
class Draw:
    """One sample's resolution: the entry label (``native``, ``448``...) and its policy."""

    index: int
    label: str
    policy: Policy


class MixedResolution:
    """``native:0.5,448:0.25,224:0.25`` -> a reproducible per-sample choice of resolution policy.

    ``draw(index)`` depends only on ``(seed, index)``: the same sample gets the same resolution in every
    epoch, every dataloader worker and every rerun, and over many samples the labels follow the given
    probabilities (independent draws from a uniform derived from a SHA-256 of ``seed:index``).
    """

    def __init__(self, spec: str, base: NativePolicy, seed: int = 42):
        self.spec = str(spec)
        self.seed = int(seed)
        self.base = base
        entries: list[tuple[str, float]] = []
        text = self.spec.strip()
        if not text:
            raise BioresConfigError("--mixed_resolution is empty; expected e.g. native:0.5,448:0.25,224:0.25")
        for part in text.split(","):
            label, sep, prob_text = part.strip().partition(":")
            label = label.strip().lower()
            if not sep or not label or not prob_text.strip():
                raise BioresConfigError(
                    f"--mixed_resolution entry {part.strip()!r} must be RESOLUTION:PROBABILITY (e.g. 448:0.25)"
                )
            try:
                prob = float(prob_text)
            except ValueError:
                raise BioresConfigError(f"--mixed_resolution probability {prob_text.strip()!r} is not a number") from None
            if not math.isfinite(prob) or prob <= 0 or prob > 1:
                raise BioresConfigError(f"--mixed_resolution probability of {label!r} must be in (0, 1], got {prob_text.strip()}")
            if label != "native" and not (label.isdigit() and int(label) > 0):
                raise BioresConfigError(
                    f"--mixed_resolution resolution {label!r} is unknown; use 'native' or a longest side in pixels such as 448"
                )
            if label.isdigit():
                label = str(int(label))
            if any(label == seen for seen, _ in entries):
                raise BioresConfigError(f"--mixed_resolution lists {label!r} twice")
            entries.append((label, prob))
        total = sum(p for _, p in entries)
        if abs(total - 1.0) > 1e-6:
            raise BioresConfigError(f"--mixed_resolution probabilities sum to {total:g}, not 1")
        self.entries: tuple[tuple[str, float], ...] = tuple(entries)
        self.policies: dict[str, Policy] = {label: self._policy(label) for label, _ in entries}
        cum, acc = [], 0.0
        for _, p in entries:
            acc += p
            cum.append(acc)
        cum[-1] = 1.0
        self._cumulative = tuple(cum)

    def _policy(self, label: str) -> Policy:
        if label == "native":
            return self.base
        side = int(label)
        if side < self.base.factor:
            raise BioresConfigError(
                f"--mixed_resolution side {side} is smaller than one {self.base.factor}-pixel patch"
            )
        return DownsamplePolicy(max_side=side, then=self.base)

    @property
    def probabilities(self) -> dict[str, float]:
        return dict(self.entries)

    def uniform(self, index: int) -> float:
        """A uniform number in [0, 1) that depends only on ``(seed, index)``."""
        digest = hashlib.sha256(f"biores-mixed:{self.seed}:{int(index)}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def draw(self, index: int) -> Draw:
        u = self.uniform(index)
        for (label, _), edge in zip(self.entries, self._cumulative):
            if u < edge:
                return Draw(int(index), label, self.policies[label])
        label = self.entries[-1][0]  # pragma: no cover - u < 1.0 == last edge
        return Draw(int(index), label, self.policies[label])

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "seed": self.seed, "probabilities": self.probabilities}


def check_resolution_flags(
    image_aspect_ratio: Any,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    mixed_resolution: str | None = None,
    mm_patch_merge_type: str | None = "flat",
    patch_size: int = 14,
    seed: int = 42,
) -> dict[str, Any] | None:
    """Check every biores flag without importing torch / transformers.

    Returns the ``ResolutionConfig`` fields for ``native`` (None for LLaVA's own aspect ratios). Raises
    :class:`BioresConfigError` (one line) on: an unknown aspect ratio, native-only flags with a non-native
    aspect ratio, a bad pixel budget (``min_pixels > max_pixels``, non-positive values, a budget below one
    patch), a malformed ``--mixed_resolution`` (syntax, unknown resolution, probabilities not summing to 1),
    or ``native`` with a spatial ``--mm_patch_merge_type``.
    """
    aspect = check_aspect_ratio(image_aspect_ratio)
    if aspect != "native":
        given = [name for name, value in (("--min_pixels", min_pixels), ("--max_pixels", max_pixels),
                                          ("--mixed_resolution", mixed_resolution)) if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise BioresConfigError(
                f"{', '.join(given)} {verb} only to --image_aspect_ratio native (got {aspect!r})"
            )
        return None
    for name, value in (("--min_pixels", min_pixels), ("--max_pixels", max_pixels)):
        if value is not None and int(value) < 1:
            raise BioresConfigError(f"{name} must be a positive pixel count, got {value}")
    defaults = NativePolicy()
    lo = int(min_pixels) if min_pixels is not None else defaults.min_pixels
    hi = int(max_pixels) if max_pixels is not None else defaults.max_pixels
    if lo > hi:
        lo_name = "--min_pixels" if min_pixels is not None else "the default --min_pixels"
        hi_name = "--max_pixels" if max_pixels is not None else "the default --max_pixels"
        raise BioresConfigError(f"{lo_name} ({lo}) is larger than {hi_name} ({hi})")
    merge = str(mm_patch_merge_type or "flat")
    if merge != "flat":
        raise BioresConfigError(
            f"--mm_patch_merge_type {merge!r} needs anyres crops; --image_aspect_ratio native uses 'flat'"
        )
    policy = NativePolicy(patch_size=int(patch_size), merge_size=1, min_pixels=lo, max_pixels=hi)
    if mixed_resolution is not None:
        MixedResolution(mixed_resolution, policy, seed)
    return {
        "image_aspect_ratio": "native",
        "min_pixels": lo,
        "max_pixels": hi,
        "patch_size": int(patch_size),
        "merge_size": 1,  # LLaVA's projector takes every patch token
        "mixed_resolution": mixed_resolution,
        "train_resolution_label": "mixed" if mixed_resolution is not None else "native",
    }


def validate_resolution_flags(image_aspect_ratio: Any, **flags: Any):
    """:func:`check_resolution_flags`, as a :class:`~biores_plugin.configuration.ResolutionConfig` (or None)."""
    fields = check_resolution_flags(image_aspect_ratio, **flags)
    if fields is None:
        return None
    from biores_plugin.configuration import ResolutionConfig

    return ResolutionConfig(**fields)


def resolution_for(config: Any) -> NativePolicy:
    """The native policy of a validated config (with its current patch size)."""
    policy = config.policy()
    if not isinstance(policy, NativePolicy):  # pragma: no cover - validate_resolution_flags guarantees it
        raise BioresConfigError(f"expected a native policy, got {policy.name}")
    return policy


def describe_policy(policy: Policy) -> str:
    return policy.name if not isinstance(policy, DownsamplePolicy) else f"{policy.max_side}+native"


def parse_inference_policy(config_dict: dict[str, Any] | None, **fallback: Any) -> NativePolicy:
    """The native policy stored in a checkpoint config's ``biores`` field (or built from ``fallback``)."""
    if config_dict:
        from biores_plugin.configuration import ResolutionConfig

        cfg = ResolutionConfig.from_dict(dict(config_dict))
        cfg.image_aspect_ratio = "native"
        return resolution_for(cfg)
    options = {k: v for k, v in fallback.items() if v is not None}
    return parse_policy("native", **options)  # type: ignore[return-value]
