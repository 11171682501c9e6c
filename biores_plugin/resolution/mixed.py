"""``--mixed_resolution native:0.5,448:0.25,224:0.25``: one parser and one seeded draw.

Sample ``i``'s level depends only on ``(seed, i)``: both trainers (``biores-train`` and the
original-LLaVA path) draw the same level for the same flags, in every epoch, worker and rerun.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import BioresConfigError
from .levels import NATIVE, parse_resolution, resolution_label

__all__ = ["MixedResolution", "draw_summary"]

_SALT = 0xB10E5


class MixedResolution:
    """A parsed ``--mixed_resolution`` spec (``None`` or ``""``: every sample at native)."""

    def __init__(self, spec: str | None = None, seed: int = 0):
        self.spec = None if spec is None or not str(spec).strip() else str(spec).strip()
        self.seed = int(seed)
        self.entries: tuple[tuple[int, float], ...] = self.parse(self.spec)
        cdf = np.cumsum([p for _, p in self.entries], dtype=np.float64)
        self._cdf = cdf / cdf[-1]
        self._cache = np.zeros(0, dtype=np.int64)

    @staticmethod
    def parse(spec: str | None) -> tuple[tuple[int, float], ...]:
        if spec is None:
            return ((NATIVE, 1.0),)
        entries: list[tuple[int, float]] = []
        for part in str(spec).split(","):
            label, sep, prob_text = part.strip().rpartition(":")
            if not sep or not label.strip() or not prob_text.strip():
                raise BioresConfigError(
                    f"--mixed_resolution entry {part.strip()!r} must be RES:PROB (e.g. native:0.5 or 448:0.25)"
                )
            level = parse_resolution(label.strip().lower(), what="--mixed_resolution resolution")
            try:
                prob = float(prob_text)
            except ValueError:
                raise BioresConfigError(
                    f"--mixed_resolution probability {prob_text.strip()!r} is not a number"
                ) from None
            if not math.isfinite(prob) or not 0 < prob <= 1:
                raise BioresConfigError(f"--mixed_resolution probabilities must be in (0, 1], got {prob_text.strip()}")
            if any(level == seen for seen, _ in entries):
                raise BioresConfigError(f"--mixed_resolution lists {resolution_label(level)!r} twice")
            entries.append((level, prob))
        total = sum(p for _, p in entries)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise BioresConfigError(f"--mixed_resolution probabilities sum to {total:g}, not 1")
        return tuple(entries)

    @property
    def levels(self) -> list[int]:
        return [level for level, _ in self.entries]

    @property
    def probabilities(self) -> dict[str, float]:
        return {resolution_label(level): p for level, p in self.entries}

    @property
    def label(self) -> str:
        """``native``, ``64`` or ``mixed(native:0.5,64:0.5)``: what reports call the training resolution."""
        if len(self.entries) == 1:
            return resolution_label(self.entries[0][0])
        return "mixed(" + ",".join(f"{resolution_label(r)}:{p:g}" for r, p in self.entries) + ")"

    def draws(self, n: int) -> list[int]:
        """The levels of samples ``0 .. n-1`` (a prefix of every longer draw)."""
        if len(self.entries) == 1:
            return [self.entries[0][0]] * int(n)
        if len(self._cache) < n:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SALT]))
            # numpy's Generator.choice(p=...) draws exactly this: uniforms, then the cdf bucket
            self._cache = self._cdf.searchsorted(rng.random(max(int(n), 2 * len(self._cache))), side="right")
        return [self.entries[int(i)][0] for i in self._cache[: int(n)]]

    def draw(self, index: int) -> int:
        return self.draws(int(index) + 1)[int(index)]

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "seed": self.seed, "probabilities": self.probabilities}


def draw_summary(draws: Sequence[int]) -> dict[str, Any]:
    counts = Counter(resolution_label(d) for d in draws)
    return {"counts": dict(counts), "fractions": {k: v / len(draws) for k, v in counts.items()} if draws else {}}
