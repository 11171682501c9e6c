"""Resolution levels: ``native``, a longest side in pixels or a pixel size in µm, as sweeps name them.

A level is an int: ``NATIVE`` (0) keeps the stored image, ``N > 0`` caps its longest side at
``N`` px (antialiased, never upsampled), ``N < 0`` is a pixel size of ``-N`` nanometres
(``"0.5um"`` -> -500): the image is resampled to that many µm per pixel where the data set
carries its pixel size (never upsampled). One parser and one label for every room.
"""

from __future__ import annotations

import math
import re
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
    "level_display",
    "level_order",
    "micron_size",
    "parse_levels",
    "parse_resolution",
    "resolution_label",
]

NATIVE = 0
#: A sweep's default inference levels.
DEFAULT_RESOLUTIONS: tuple[int | str, ...] = (224, 448, 896, "native")
#: The smallest longest side a level may name.
MIN_LEVEL = 8


_MICRONS = re.compile(r"^(\d+(?:[.p]\d+)?)\s*(?:um|µm|μm)(?:/px)?$")


def parse_resolution(value: Any, *, what: str = "resolution") -> int:
    """``224`` / ``"224"`` -> 224, ``"native"`` -> ``NATIVE``, ``"0.5um"`` / ``"0p5um"`` -> -500
    (nanometres per pixel, negated); anything else is a one-line error."""
    if isinstance(value, str) and value.strip().lower() == "native":
        return NATIVE
    match = _MICRONS.match(value.strip().lower()) if isinstance(value, str) else None
    if match:
        nanometres = round(float(match.group(1).replace("p", ".")) * 1000)
        if nanometres < 1:
            raise BioresConfigError(f"{what} {value.strip()!r} is finer than 1 nm per pixel")
        return -nanometres
    text = str(value).strip()
    if isinstance(value, bool) or not (isinstance(value, int) or text.isdigit()):
        raise BioresConfigError(
            f"{what} {text!r} is unknown; use 'native', a longest side in pixels such as 448 "
            "or a pixel size such as 0.5um"
        )
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
    """``"native"``, ``"448"`` or, for a pixel size, ``"0p5um"`` (a name-safe token: no dot)."""
    if level < 0:
        return f"{-int(level) / 1000:g}".replace(".", "p") + "um"
    return "native" if level == NATIVE else str(int(level))


def level_display(label: str) -> str:
    """How reports show a level label: ``"0p5um"`` -> ``"0.5 µm/px"``; others unchanged."""
    match = _MICRONS.match(str(label))
    return f"{match.group(1).replace('p', '.')} µm/px" if match else str(label)


def level_order(label: str) -> float:
    """Sort key of a level label, coarse to fine: µm levels (coarsest first), then px, then native."""
    text = str(label).strip()
    if text == "native":
        return math.inf
    match = _MICRONS.match(text.removesuffix(" µm/px") + "um" if text.endswith(" µm/px") else text)
    if match:
        return -float(match.group(1).replace("p", "."))
    return float(text) if text.replace(".", "", 1).isdigit() else 1e18


def micron_size(width: int, height: int, level: int, mpp: float | None) -> tuple[int, int]:
    """The size of a ``width x height`` image of ``mpp`` µm/px at the pixel-size level ``level``
    (< 0): resampled to ``-level / 1000`` µm/px, never upsampled; unknown ``mpp``: as stored."""
    target = -level / 1000.0
    if mpp is None or not math.isfinite(mpp) or mpp <= 0 or target <= mpp * (1 + 1e-9):
        return int(width), int(height)
    return max(1, round(width * mpp / target)), max(1, round(height * mpp / target))


def effective_size(width: int, height: int, level: int) -> tuple[int, int]:
    """The size an image of ``width x height`` has at ``level`` (no pixels touched)."""
    if level == NATIVE:
        return int(width), int(height)
    if level < 0:
        raise BioresConfigError(
            f"resolution {resolution_label(level)} is a pixel size: it needs the data set's µm per pixel "
            "(uBench's microns_per_pixel); use a longest side in pixels here"
        )
    return DownsamplePolicy(max_side=int(level)).downsample_size(width, height)


def capped(base: Policy, level: int) -> Policy:
    """``base`` at ``level``: itself for native, else the longest-side cap followed by ``base``."""
    if level == NATIVE:
        return base
    if level < 0:
        effective_size(1, 1, level)  # the one-line error: a pixel size needs the image's µm/px
    factor = getattr(base, "factor", None)
    if factor is not None and level < factor:
        raise BioresConfigError(f"resolution {level} is smaller than one {factor}-pixel patch")
    return DownsamplePolicy(max_side=int(level), then=base)  # type: ignore[arg-type]
