"""Reference detectors: the proof that the benchmark is resolution-sensitive.

:func:`detect` answers the fine question from excess local high-frequency energy (chance after a
4x antialiased reduction); :func:`detect_coarse` answers the coarse one at low resolution.
How the thresholds were fitted: docs/synth.md.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import BioresConfigError
from ._common import coerce_rng, gaussian, parse_size
from .generators import COUNT_WORDS, GENERATORS, check_generators, render_array

#: Channel read by the fine detector of each generator.
FINE_CHANNEL = {"striations": "L", "puncta": "G", "mitosis": "L", "fundus": "G"}

#: Excess local Laplacian energy above which the fine feature is called present (native size).
FINE_THRESHOLDS = {"striations": 0.045, "puncta": 0.045, "mitosis": 0.02, "fundus": 0.015}

_ENERGY_SIGMA = 3.0


def _channel(image: Image.Image, channel: str) -> np.ndarray:
    if not isinstance(image, Image.Image):
        raise BioresConfigError(f"expected a PIL image, got {type(image).__name__}")
    if channel == "L":
        arr = np.asarray(image.convert("L"), dtype=np.float32)
    else:
        rgb = image.convert("RGB")
        arr = np.asarray(rgb.getchannel("RGB".index(channel)), dtype=np.float32)
    return arr * np.float32(1 / 255)


def fine_score(generator: str, image: Image.Image, native_size=None) -> float:
    """Excess local high-frequency energy of ``image`` (the fine detector's statistic).

    If ``native_size`` is given and differs from the image size, the image is first resized
    to it with bicubic interpolation (the detector is defined at native resolution).
    """
    (name,) = check_generators([generator])
    if native_size is not None:
        w, h = parse_size(native_size)
        if image.size != (w, h):
            image = image.resize((w, h), Image.BICUBIC)
    g = _channel(image, FINE_CHANNEL[name])
    lap = ndimage.laplace(g, mode="nearest")
    e = gaussian(lap * lap, _ENERGY_SIGMA)
    return float(e.max() - np.median(e))


def detect(generator: str, image: Image.Image, native_size=None, *, threshold: float | None = None) -> str:
    """Answer the fine question of ``generator`` for ``image``: ``"yes"`` or ``"no"``."""
    (name,) = check_generators([generator])
    thr = FINE_THRESHOLDS[name] if threshold is None else float(threshold)
    return "yes" if fine_score(name, image, native_size) > thr else "no"


# ----------------------------------------------------------------------------------------
# coarse detectors (work on a low-resolution image)
# ----------------------------------------------------------------------------------------
def _count_cells(image: Image.Image, channel: str) -> str:
    g = _channel(image, channel)
    side = max(image.size)
    g = gaussian(g, max(0.7, side / 128.0))
    bg = float(np.median(g))
    top = float(np.percentile(g, 99.5))
    mask = g > bg + 0.35 * (top - bg)
    lab, n = ndimage.label(mask)
    if n == 0:
        return COUNT_WORDS[0]
    areas = np.bincount(lab.ravel())[1:]
    min_area = 0.15 * areas.max()
    k = int((areas >= min_area).sum())
    return COUNT_WORDS[min(max(k, 1), 4) - 1]


def _nuclei_density(image: Image.Image) -> str:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) * np.float32(1 / 255)
    hema = rgb[..., 2] - rgb[..., 0]  # purple (hematoxylin) minus pink (eosin)
    frac = float((hema > np.median(hema) + 0.08).mean())
    return "yes" if frac > MITOSIS_DENSITY_THRESHOLD else "no"


#: Fraction of clearly purple pixels above which the tissue has "many" nuclei.
MITOSIS_DENSITY_THRESHOLD = 0.062


def _disc_side(image: Image.Image) -> str:
    g = _channel(image, "L")
    g = gaussian(g, max(1.0, max(image.size) / 64.0))
    _, x = np.unravel_index(int(np.argmax(g)), g.shape)
    return "right" if x >= g.shape[1] / 2 else "left"


def detect_coarse(generator: str, image: Image.Image) -> str:
    """Answer the coarse question of ``generator`` for ``image`` (any resolution)."""
    (name,) = check_generators([generator])
    if name in ("striations", "puncta"):
        return _count_cells(image, "L" if name == "striations" else "G")
    if name == "mitosis":
        return _nuclei_density(image)
    return _disc_side(image)


# ----------------------------------------------------------------------------------------
# helpers to fit and evaluate
# ----------------------------------------------------------------------------------------
def downsample(image: Image.Image, factor: float = 4.0, resample=Image.LANCZOS) -> Image.Image:
    """Antialiased reduction of the longest side by ``factor`` (aspect ratio kept)."""
    w, h = image.size
    scale = 1.0 / float(factor)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)


def balanced_labels(generator: str, index: int) -> dict:
    """Labels for item ``index`` of a balanced design (every fine x coarse combination in turn)."""
    spec = GENERATORS[generator]
    opts = spec.coarse.options
    return {"fine": index % 2 == 0, "coarse": opts[(index // 2) % len(opts)]}


def fit_detector(generator: str, n: int = 200, size=256, seed: int = 12345, *, factor: float | None = None):
    """Fit the fine threshold on ``n`` generated images (optionally reduced by ``factor``).

    Returns a dict with ``threshold`` (geometric midpoint of the best interval), ``accuracy``
    at that threshold and the score lists ``yes`` / ``no``. Use ``factor=4`` to measure how
    well *any* threshold does after a 4x reduction (an oracle bound, fitted in-sample).
    """
    (name,) = check_generators([generator])
    w, h = parse_size(size)
    rng, _ = coerce_rng(seed)
    scores, labels = [], []
    for i in range(int(n)):
        lab = balanced_labels(name, i)
        arr, _, _ = render_array(name, rng, (w, h), labels=lab)
        img = Image.fromarray(arr, mode=GENERATORS[name].mode)
        if factor is not None:
            img = downsample(img, factor)
        scores.append(fine_score(name, img, (w, h)))
        labels.append(lab["fine"])
    s = np.asarray(scores)
    y = np.asarray(labels)
    order = np.sort(s)
    cands = np.concatenate([[order[0] - 1e-9], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-9]])
    accs = np.array([((s > t) == y).mean() for t in cands])
    best = np.flatnonzero(accs == accs.max())
    lo, hi = float(cands[best[0]]), float(cands[best[-1]])
    # scores span decades: split the best interval geometrically when possible
    thr = float(np.sqrt(lo * hi)) if lo > 0 and hi > 0 else (lo + hi) / 2
    return {"threshold": thr, "accuracy": float(accs.max()), "yes": s[y].tolist(), "no": s[~y].tolist()}
