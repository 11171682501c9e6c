"""Resolution levels: ``native`` or a longest side in pixels, as sweeps and mixes name them.

A level is an int: ``NATIVE`` (0) keeps the stored image, ``N > 0`` caps its longest side at
``N`` px (antialiased, never upsampled). One parser and one label for every room.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import BioresConfigError
from .policy import DownsamplePolicy, Policy

__all__ = [
    "DEFAULT_RESOLUTIONS",
    "MIN_LEVEL",
    "NATIVE",
    "capped",
    "effective_size",
    "parse_levels",
    "parse_resolution",
    "resolution_label",
]

NATIVE = 0
#: A sweep's default inference levels.
DEFAULT_RESOLUTIONS: tuple[int | str, ...] = (224, 448, 896, "native")
#: The smallest longest side a level may name.
MIN_LEVEL = 8


def parse_resolution(value: Any, *, what: str = "resolution") -> int:
    """``224`` / ``"224"`` -> 224, ``"native"`` -> ``NATIVE``; anything else is a one-line error."""
    if isinstance(value, str) and value.strip().lower() == "native":
        return NATIVE
    text = str(value).strip()
    if isinstance(value, bool) or not (isinstance(value, int) or text.isdigit()):
        raise BioresConfigError(f"{what} {text!r} is unknown; use 'native' or a longest side in pixels such as 448")
    number = int(value)
    if number < MIN_LEVEL:
        raise BioresConfigError(f"{what} must be at least {MIN_LEVEL} px (or 'native'), got {number}")
    return number


def parse_levels(values: str | Iterable[Any], *, what: str = "resolutions") -> list[int]:
    """``"224,448,native"`` (or a list) -> ``[224, 448, 0]``: in order, duplicates dropped, never empty."""
    items = values.split(",") if isinstance(values, str) else list(values)
    levels: list[int] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        level = parse_resolution(item, what=what.rstrip("s"))
        if level not in levels:
            levels.append(level)
    if not levels:
        raise BioresConfigError(f"{what} is empty; expected e.g. 224,448,896,native")
    return levels


def resolution_label(level: int) -> str:
    return "native" if level == NATIVE else str(int(level))


def effective_size(width: int, height: int, level: int) -> tuple[int, int]:
    """The size an image of ``width x height`` has at ``level`` (no pixels touched)."""
    if level == NATIVE:
        return int(width), int(height)
    return DownsamplePolicy(max_side=int(level)).downsample_size(width, height)


def capped(base: Policy, level: int) -> Policy:
    """``base`` at ``level``: itself for native, else the longest-side cap followed by ``base``."""
    if level == NATIVE:
        return base
    factor = getattr(base, "factor", None)
    if factor is not None and level < factor:
        raise BioresConfigError(f"resolution {level} is smaller than one {factor}-pixel patch")
    return DownsamplePolicy(max_side=int(level), then=base)  # type: ignore[arg-type]
