"""Numpy building blocks shared by the synthetic generators.

Everything works on float32 arrays in [0, 1] of shape (height, width) or (height, width, 3).
The decisive fine features are *zero-mean* gratings / lattices with a period of 2.2 to 2.8
native pixels: an antialiased downsampling below that scale averages them away, while the
coarse structures (cells, nuclei, optic disc) stay.
"""

from __future__ import annotations

import re
from typing import Union

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import BioresConfigError

#: Period range (native pixels) of every fine feature.
FINE_PERIOD_RANGE = (2.2, 2.8)

#: Smallest / largest accepted native side.
MIN_SIDE = 128
MAX_SIDE = 4096

SizeLike = Union[int, str, tuple, list]
RngLike = Union[int, np.integer, np.random.Generator, np.random.SeedSequence]


def parse_size(size: SizeLike) -> tuple[int, int]:
    """Return ``(width, height)`` from ``256``, ``"256"``, ``"384x256"`` or ``(384, 256)``."""
    w = h = None
    if isinstance(size, bool):
        pass
    elif isinstance(size, (int, np.integer)):
        w = h = int(size)
    elif isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", size)
        if m:
            w = int(m.group(1))
            h = int(m.group(2)) if m.group(2) else w
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size):
            w, h = int(size[0]), int(size[1])
    if w is None or h is None:
        raise BioresConfigError(f"invalid size {size!r}: use N or WxH, e.g. 256 or 384x256")
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise BioresConfigError(f"size {w}x{h} out of range: each side must be in [{MIN_SIDE}, {MAX_SIDE}]")
    if max(w, h) > 2 * min(w, h):
        raise BioresConfigError(f"size {w}x{h} too elongated: aspect ratio must be at most 2")
    return w, h


def coerce_rng(rng_or_seed: RngLike) -> tuple[np.random.Generator, int]:
    """Return ``(generator, seed)`` where ``seed`` (a uint32) alone reproduces the generator.

    An int is used as the seed itself; a Generator or SeedSequence is used to draw a seed, so
    every item records a seed that regenerates it exactly.
    """
    if isinstance(rng_or_seed, bool):
        raise BioresConfigError(f"invalid seed {rng_or_seed!r}: expected an int or numpy Generator")
    if isinstance(rng_or_seed, (int, np.integer)):
        seed = int(rng_or_seed)
        if not 0 <= seed < 2**32:
            raise BioresConfigError(f"seed {seed} out of range: must be in [0, 2**32)")
    elif isinstance(rng_or_seed, np.random.Generator):
        seed = int(rng_or_seed.integers(0, 2**32))
    elif isinstance(rng_or_seed, np.random.SeedSequence):
        seed = int(rng_or_seed.generate_state(1, np.uint32)[0])
    else:
        raise BioresConfigError(f"invalid seed {rng_or_seed!r}: expected an int or numpy Generator")
    return np.random.default_rng(seed), seed


def smooth_field(rng: np.random.Generator, h: int, w: int, cell_px: float) -> np.ndarray:
    """Zero-mean, unit-ish std random field varying on a scale of ``cell_px`` pixels."""
    gh = max(2, int(round(h / cell_px)) + 2)
    gw = max(2, int(round(w / cell_px)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def illumination(rng: np.random.Generator, h: int, w: int, strength: float) -> np.ndarray:
    """Multiplicative uneven illumination in ``[1 - strength, 1]`` (a tilted, curved plane)."""
    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    a, b, c = rng.uniform(-1, 1, 3).astype(np.float32)
    cx, cy = rng.uniform(-1, 1, 2).astype(np.float32)
    f = a * xx + b * yy + c * ((xx - cx) ** 2 + (yy - cy) ** 2) * 0.5
    f = f - f.min()
    f = f / max(float(f.max()), 1e-6)
    return (1.0 - strength * f).astype(np.float32)


def place_discs(
    rng: np.random.Generator,
    w: int,
    h: int,
    radii: np.ndarray,
    *,
    margin: float,
    gap: float,
    avoid: list[tuple[float, float, float]] | None = None,
    tries: int = 128,
) -> np.ndarray | None:
    """Place non-overlapping discs; return centres (n, 2) as (x, y) or None when it failed."""
    n = len(radii)
    centres = np.zeros((n, 2), dtype=np.float64)
    obs = np.array([(ox, oy) for ox, oy, _ in (avoid or [])], dtype=np.float64).reshape(-1, 2)
    obs_r = np.array([orad for _, _, orad in (avoid or [])], dtype=np.float64)
    for i, r in enumerate(radii):
        lo_x, hi_x = r + margin, w - r - margin
        lo_y, hi_y = r + margin, h - r - margin
        if lo_x >= hi_x or lo_y >= hi_y:
            return None
        cx = rng.uniform(lo_x, hi_x, tries)
        cy = rng.uniform(lo_y, hi_y, tries)
        ox = np.concatenate([centres[:i, 0], obs[:, 0]])
        oy = np.concatenate([centres[:i, 1], obs[:, 1]])
        need = np.concatenate([radii[:i], obs_r]) + (r + gap)
        if ox.size:
            ddx = cx[:, None] - ox[None, :]
            ddy = cy[:, None] - oy[None, :]
            ok = (ddx * ddx + ddy * ddy >= (need * need)[None, :]).all(axis=1)
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                return None
            j = idx[0]
        else:
            j = 0
        centres[i] = (cx[j], cy[j])
    return centres


def blob_box(h: int, w: int, cx: float, cy: float, extent: float):
    """Integer bounding box (y0, y1, x0, x1) and local coordinate grids (dy, dx)."""
    x0 = max(0, int(np.floor(cx - extent)))
    x1 = min(w, int(np.ceil(cx + extent)) + 1)
    y0 = max(0, int(np.floor(cy - extent)))
    y1 = min(h, int(np.ceil(cy + extent)) + 1)
    dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
    return (y0, y1, x0, x1), dy, dx


def soft_blob(
    rng: np.random.Generator,
    dy: np.ndarray,
    dx: np.ndarray,
    r: float,
    *,
    aspect: float,
    theta: float,
    edge: float,
    wobble: float = 0.08,
) -> np.ndarray:
    """Soft (logistic-edged) irregular ellipse of radius ``r`` and edge width ``edge`` px."""
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    u = dx * c + dy * s
    v = (-dx * s + dy * c) / np.float32(aspect)
    rho = np.sqrt(u * u + v * v)
    phi = np.arctan2(v, u)
    amp = rng.uniform(0, wobble, 3).astype(np.float32)
    ph = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
    rad = np.float32(r) * (
        1 + amp[0] * np.cos(2 * phi + ph[0]) + amp[1] * np.cos(3 * phi + ph[1]) + amp[2] * np.cos(4 * phi + ph[2]) * 0.5
    )
    d = (rho - rad) / np.float32(edge)
    return (0.5 - 0.5 * np.tanh(0.5 * d)).astype(np.float32)


def grating(dy: np.ndarray, dx: np.ndarray, period: float, theta: float, phase: float) -> np.ndarray:
    """Zero-mean cosine grating (striations), values in [-1, 1]."""
    k = np.float32(2 * np.pi / period)
    return np.cos(k * (dx * np.float32(np.cos(theta)) + dy * np.float32(np.sin(theta))) + np.float32(phase))


def hex_lattice(dy: np.ndarray, dx: np.ndarray, period: float, theta: float, phase: np.ndarray) -> np.ndarray:
    """Zero-mean hexagonal lattice of bright dots (sum of three gratings), values in [-0.5, 1]."""
    out = np.zeros(np.broadcast_shapes(dy.shape, dx.shape), dtype=np.float32)
    for j in range(3):
        out += grating(dy, dx, period, theta + j * np.pi / 3, float(phase[j]))
    return out / np.float32(3.0)


def noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Fast zero-mean noise of standard deviation ``sigma`` (triangular: sum of two uniforms)."""
    u = rng.random((2, *shape), dtype=np.float32)
    return (u[0] + u[1] - np.float32(1.0)) * np.float32(sigma * np.sqrt(6.0))


def square_lattice(dy: np.ndarray, dx: np.ndarray, period: float, theta: float, phase: np.ndarray) -> np.ndarray:
    """Zero-mean square lattice of dots (two orthogonal gratings), values in [-1, 1]."""
    return (
        grating(dy, dx, period, theta, float(phase[0])) + grating(dy, dx, period, theta + np.pi / 2, float(phase[1]))
    ) * np.float32(0.5)


def gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(img, sigma, mode="nearest", truncate=3.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
