"""Procedural biomedical images whose fine question needs native resolution.

Each generator renders one image for given labels and returns it with two template questions:
a *coarse* one (answerable after a 4x antialiased downsampling) and a *fine* one whose
decisive feature is a zero-mean grating / dot lattice of period 2.2 to 2.8 native pixels.
Because the feature averages to zero, an antialiased reduction erases it and leaves no
low-resolution trace (no mean-brightness or colour shift), unlike isolated sharp dots which
survive as faint blobs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..errors import BioresConfigError
from ._common import (
    FINE_PERIOD_RANGE,
    blob_box,
    coerce_rng,
    gaussian,
    grating,
    hex_lattice,
    illumination,
    noise,
    parse_size,
    place_discs,
    smooth_field,
    soft_blob,
    square_lattice,
    to_uint8,
)

#: Bump whenever a change alters generated pixels or questions (invalidates on-disk caches).
GENERATOR_VERSION = 2

COUNT_WORDS = ("one", "two", "three", "four")
YES_NO = ("yes", "no")
LEFT_RIGHT = ("left", "right")


@dataclass(frozen=True)
class Question:
    text: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    mode: str  # PIL mode of the image: "L" or "RGB"
    coarse: Question
    fine: Question
    render: Callable  # (rng, w, h, fine: bool, coarse: str) -> (float array, info dict)
    description: str


def _retry_place(rng, w, h, n, r_lo, r_hi, s, *, margin, gap, avoid=None, shrink=0.97):
    """Draw radii and place ``n`` discs, shrinking the radii slightly on each failed attempt."""
    scale = 1.0
    for _ in range(60):
        radii = rng.uniform(r_lo, r_hi, n) * s * scale
        centres = place_discs(rng, w, h, radii, margin=margin, gap=gap, avoid=avoid)
        if centres is not None:
            return radii, centres
        scale *= shrink
    raise RuntimeError("could not place non-overlapping structures")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# striations: the configuration validated by the demo feasibility note
# --------------------------------------------------------------------------------------------
def _render_striations(rng, w, h, fine, coarse):
    s = min(w, h) / 256.0
    n = COUNT_WORDS.index(coarse) + 1
    period = float(rng.uniform(*FINE_PERIOD_RANGE))
    edge = 1.6 * max(1.0, s)
    radii, centres = _retry_place(rng, w, h, n, 20.0, 29.0, s, margin=6 * s, gap=12 * s)
    img = np.full((h, w), rng.uniform(0.03, 0.07), dtype=np.float32)
    img += np.float32(0.01) * smooth_field(rng, h, w, 24 * s)
    tex = smooth_field(rng, h, w, 5 * s)
    for (cx, cy), r in zip(centres, radii):
        (y0, y1, x0, x1), dy, dx = blob_box(h, w, cx, cy, r * 1.3 + 5 * edge)
        mask = soft_blob(rng, dy, dx, r, aspect=rng.uniform(0.75, 1.0), theta=rng.uniform(0, np.pi), edge=edge)
        b = np.float32(rng.uniform(0.36, 0.52))
        amp = np.float32(rng.uniform(0.4, 0.6))
        theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        cell = b * mask * (1 + np.float32(0.18) * tex[y0:y1, x0:x1])
        if fine:
            cell = cell * (1 + amp * grating(dy, dx, period, theta, phase))
        img[y0:y1, x0:x1] += cell
    img *= illumination(rng, h, w, rng.uniform(0.15, 0.35))
    img += noise(rng, (h, w), rng.uniform(0.015, 0.025))
    info = {
        "count": n,
        "fine_scale_px": period,
        "coarse_scale_px": float(2 * radii.mean()),
        "details": {"period_px": round(period, 4), "radii_px": [round(float(r), 2) for r in radii]},
    }
    return img, info


# --------------------------------------------------------------------------------------------
# puncta: fluorescence cells with nucleus, diffuse vesicles and (or not) a fine punctate lattice
# --------------------------------------------------------------------------------------------
def _render_puncta(rng, w, h, fine, coarse):
    s = min(w, h) / 256.0
    n = COUNT_WORDS.index(coarse) + 1
    period = float(rng.uniform(*FINE_PERIOD_RANGE))
    green = bool(rng.random() < 0.5)
    edge = 1.8 * max(1.0, s)
    radii, centres = _retry_place(rng, w, h, n, 20.0, 29.0, s, margin=6 * s, gap=12 * s)
    img = np.full((h, w), rng.uniform(0.02, 0.06), dtype=np.float32)
    img += np.float32(0.008) * smooth_field(rng, h, w, 24 * s)
    for (cx, cy), r in zip(centres, radii):
        (y0, y1, x0, x1), dy, dx = blob_box(h, w, cx, cy, r * 1.3 + 5 * edge)
        mask = soft_blob(
            rng, dy, dx, r, aspect=rng.uniform(0.7, 1.0), theta=rng.uniform(0, np.pi), edge=edge, wobble=0.12
        )
        # dim nucleus
        off = rng.uniform(-0.2, 0.2, 2) * r
        nuc = soft_blob(
            rng,
            dy - np.float32(off[1]),
            dx - np.float32(off[0]),
            r * rng.uniform(0.33, 0.42),
            aspect=rng.uniform(0.75, 1.0),
            theta=rng.uniform(0, np.pi),
            edge=edge,
        )
        cyto = mask * (1 - np.float32(0.6) * nuc)
        # diffuse vesicles (coarse distractors, present in both classes)
        k = int(rng.integers(3, 9))
        ves = np.zeros_like(cyto)
        ang = rng.uniform(0, 2 * np.pi, k)
        rad = np.sqrt(rng.uniform(0.2, 0.75, k)) * r
        sig = rng.uniform(2.0, 3.5, k) * max(1.0, s)
        for a, rr, sg in zip(ang, rad, sig):
            vx, vy = np.float32(rr * np.cos(a)), np.float32(rr * np.sin(a))
            ves += np.exp(-((dx - vx) ** 2 + (dy - vy) ** 2) / np.float32(2 * sg * sg))
        b = np.float32(rng.uniform(0.30, 0.40))
        amp = np.float32(rng.uniform(0.8, 0.95))
        theta, phase = rng.uniform(0, np.pi / 2), rng.uniform(0, 2 * np.pi, 2)
        cell = b * cyto * (1 + np.float32(0.25) * np.minimum(ves, 1.2))
        if fine:
            cell = cell * (1 + amp * square_lattice(dy, dx, period, theta, phase))
        img[y0:y1, x0:x1] += cell
    img *= illumination(rng, h, w, rng.uniform(0.15, 0.35))
    img += noise(rng, (h, w), rng.uniform(0.012, 0.022))
    if green:
        zero = np.zeros_like(img)
        img = np.stack([zero, img, zero], axis=-1)  # pure green on black
    else:
        img = np.repeat(img[..., None], 3, axis=-1)
    info = {
        "count": n,
        "fine_scale_px": period,
        "coarse_scale_px": float(2 * radii.mean()),
        "details": {
            "period_px": round(period, 4),
            "colour": "green" if green else "gray",
            "radii_px": [round(float(r), 2) for r in radii],
        },
    }
    return img, info


# --------------------------------------------------------------------------------------------
# mitosis: H&E-like tissue; a mitotic figure is a nucleus with striated (condensed) chromatin
# --------------------------------------------------------------------------------------------
_PINK = np.array([0.93, 0.60, 0.78], dtype=np.float32)
_PURPLE = np.array([0.42, 0.25, 0.58], dtype=np.float32)


def _render_mitosis(rng, w, h, fine, coarse):
    s = min(w, h) / 256.0
    area = (w * h) / (256.0 * 256.0 * s * s)
    dense = coarse == "yes"
    period = float(rng.uniform(*FINE_PERIOD_RANGE))
    n_base = int(rng.integers(32, 45)) if dense else int(rng.integers(5, 11))
    n = max(1, int(round(n_base * area)))
    edge = 1.3 * max(1.0, s)
    # stroma: eosin density field, a few white lumens
    dens = 1 + np.float32(0.12) * smooth_field(rng, h, w, 14 * s) + np.float32(0.05) * smooth_field(rng, h, w, 5 * s)
    n_lumen = int(rng.integers(0, 3))
    lumens = []
    for _ in range(n_lumen):
        lr = rng.uniform(10, 20) * s
        lx, ly = rng.uniform(lr, w - lr), rng.uniform(lr, h - lr)
        (y0, y1, x0, x1), dy, dx = blob_box(h, w, lx, ly, lr * 1.4 + 5 * edge)
        m = soft_blob(rng, dy, dx, lr, aspect=rng.uniform(0.6, 1.0), theta=rng.uniform(0, np.pi), edge=2.5 * edge)
        dens[y0:y1, x0:x1] *= 1 - np.float32(0.85) * m
        lumens.append((lx, ly, lr))
    pink = _PINK + rng.uniform(-0.03, 0.03, 3).astype(np.float32)
    purple = _PURPLE + rng.uniform(-0.03, 0.03, 3).astype(np.float32)
    radii, centres = _retry_place(rng, w, h, n, 5.5, 8.0, s, margin=1.0, gap=3 * s, avoid=lumens)
    n_mit = int(rng.integers(1, 4))
    mitotic = {int(i) for i in rng.choice(n, size=min(n_mit, n), replace=False)}
    chrom = 1 + np.float32(0.12) * smooth_field(rng, h, w, 3 * s)
    acc_a = np.zeros((h, w), dtype=np.float32)  # nuclei do not overlap: accumulate, blend once
    acc_b = np.zeros((h, w), dtype=np.float32)  # alpha x per-nucleus stain strength
    stripes = []
    for i, ((cx, cy), r) in enumerate(zip(centres, radii)):
        (y0, y1, x0, x1), dy, dx = blob_box(h, w, cx, cy, r * 1.3 + 5 * edge)
        alpha = soft_blob(rng, dy, dx, r, aspect=rng.uniform(0.6, 1.0), theta=rng.uniform(0, np.pi), edge=edge)
        shade = np.float32(rng.uniform(0.9, 1.1))
        amp = np.float32(rng.uniform(0.42, 0.55))
        theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        acc_a[y0:y1, x0:x1] += alpha
        acc_b[y0:y1, x0:x1] += alpha * shade
        if fine and i in mitotic:
            stripes.append(((y0, y1, x0, x1), alpha * amp * grating(dy, dx, period, theta, phase), shade))
    # per channel: eosin stroma blended with hematoxylin nuclei (2-D ops, no 3-channel temporaries)
    keep = 1 - np.minimum(acc_a, 1)
    nuc = acc_b * chrom
    rgb = np.empty((h, w, 3), dtype=np.float32)
    for c in range(3):
        rgb[..., c] = (1 - (1 - pink[c]) * dens) * keep + purple[c] * nuc
    for (y0, y1, x0, x1), mod, shade in stripes:
        vec = purple[None, None, :] * (shade * chrom[y0:y1, x0:x1, None]) - pink[None, None, :]
        rgb[y0:y1, x0:x1] += mod[..., None] * vec
    rgb += noise(rng, (h, w, 3), rng.uniform(0.012, 0.022))
    info = {
        "count": n,
        "fine_scale_px": period,
        "coarse_scale_px": float(2 * radii.mean()),
        "details": {"period_px": round(period, 4), "n_nuclei": n, "n_mitotic": len(mitotic) if fine else 0},
    }
    return rgb, info


# --------------------------------------------------------------------------------------------
# fundus: retina with optic disc and vessels; microaneurysm clusters are fine dark-red lattices
# --------------------------------------------------------------------------------------------
def _arc_points(cx, cy, rx, ry, a0, a1, k=14):
    t = np.linspace(a0, a1, k)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _render_fundus(rng, w, h, fine, coarse):
    s = min(w, h) / 256.0
    right = coarse == "right"
    sgn = 1.0 if right else -1.0
    period = float(rng.uniform(*FINE_PERIOD_RANGE))
    R = 0.47 * min(w, h) * rng.uniform(0.94, 1.0)
    cx = w / 2 + rng.uniform(-0.02, 0.02) * w
    cy = h / 2 + rng.uniform(-0.02, 0.02) * h
    yy = np.arange(h, dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(w, dtype=np.float32)[None, :] - np.float32(cx)
    rr = np.sqrt(xx * xx + yy * yy) / np.float32(R)
    fov = 0.5 - 0.5 * np.tanh((rr - 1) * np.float32(R / (2 * 2.5 * max(1.0, s))))
    base = np.array([0.78, 0.36, 0.13], dtype=np.float32) * rng.uniform(0.85, 1.05)
    shade = (1 - np.float32(0.35) * rr * rr) * (1 + np.float32(0.07) * smooth_field(rng, h, w, 24 * s))
    # optic disc and macula
    dr = rng.uniform(0.13, 0.16) * R
    dxc = cx + sgn * R * rng.uniform(0.45, 0.55)
    dyc = cy + R * rng.uniform(-0.1, 0.1)
    mxc = cx - sgn * R * rng.uniform(0.05, 0.18)
    myc = cy + R * rng.uniform(-0.06, 0.06)
    mac = np.exp(
        -((xx + np.float32(cx - mxc)) ** 2 + (yy + np.float32(cy - myc)) ** 2) / np.float32(2 * (0.16 * R) ** 2)
    )
    shade = shade * (1 - np.float32(0.3) * mac)
    rgb = base[None, None, :] * shade[..., None]
    # vessels: four arcades around the macula plus nasal branches, drawn then blurred
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    dist = abs(dxc - mxc)
    a_disc = 0.0 if right else np.pi  # angle of the disc as seen from the macula
    for up in (-1, 1):
        for spread, wmain in ((rng.uniform(0.55, 0.7), 3.4), (rng.uniform(0.28, 0.38), 2.4)):
            a1 = a_disc + up * sgn * rng.uniform(1.7, 2.1)
            pts = _arc_points(mxc, dyc, dist, spread * R, a_disc, a1)
            pts[:, 1] += np.linspace(0, 1, len(pts)) * rng.uniform(-0.05, 0.05) * R
            for j in range(len(pts) - 1):
                wd = max(1, int(round(wmain * s * (1 - 0.5 * j / len(pts)))))
                draw.line([tuple(pts[j]), tuple(pts[j + 1])], fill=255, width=wd)
        # nasal branch away from the macula
        a0 = a_disc + up * sgn * 0.3
        pts = _arc_points(dxc - sgn * R * 0.3, dyc, R * 0.3, R * rng.uniform(0.3, 0.5), a0, a0 + up * sgn * 1.4, k=8)
        pts = np.vstack([[dxc, dyc], pts])
        for j in range(len(pts) - 1):
            draw.line([tuple(pts[j]), tuple(pts[j + 1])], fill=255, width=max(1, int(round(2.6 * s))))
    vessel = np.asarray(canvas, dtype=np.float32) * np.float32(1 / 255)
    vessel = gaussian(vessel, 1.4 * max(1.0, s))
    vdark = np.array([0.35, 0.6, 0.6], dtype=np.float32) * np.float32(rng.uniform(0.8, 1.0))
    # disc (drawn under the vessels)
    (y0, y1, x0, x1), dy, dx = blob_box(h, w, dxc, dyc, dr * 1.3 + 12 * s)
    da = soft_blob(
        rng, dy, dx, dr, aspect=rng.uniform(0.85, 1.0), theta=rng.uniform(0, np.pi), edge=2.2 * max(1.0, s), wobble=0.04
    )
    disc_col = np.array([0.98, 0.86, 0.58], dtype=np.float32)
    rgb[y0:y1, x0:x1] = rgb[y0:y1, x0:x1] * (1 - da[..., None]) + disc_col * da[..., None]
    rgb *= 1 - vdark[None, None, :] * vessel[..., None]
    # microaneurysm clusters: zero-mean lattice of dark-red dots inside a soft patch
    n_ma = int(rng.integers(3, 7))
    ma_pos = []
    for _ in range(200):
        if len(ma_pos) == n_ma:
            break
        a, q = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0.0, 0.62))
        px, py = cx + q * R * np.cos(a), cy + q * R * np.sin(a)
        if np.hypot(px - dxc, py - dyc) < dr + 14 * s:
            continue
        if any(np.hypot(px - ox, py - oy) < 24 * s for ox, oy in ma_pos):
            continue
        ma_pos.append((px, py))
    ma_w = np.array([0.25, 1.0, 0.9], dtype=np.float32)
    for px, py in ma_pos:
        sig = rng.uniform(4.0, 6.0) * s
        amp = np.float32(rng.uniform(0.55, 0.7))
        theta, phase = rng.uniform(0, np.pi / 3), rng.uniform(0, 2 * np.pi, 3)
        if not fine:
            continue
        (y0, y1, x0, x1), dy, dx = blob_box(h, w, px, py, 3 * sig)
        env = np.exp(-(dx * dx + dy * dy) / np.float32(2 * sig * sig))
        mod = amp * env * hex_lattice(dy, dx, period, theta, phase)
        rgb[y0:y1, x0:x1] *= 1 - mod[..., None] * ma_w
    rgb *= fov[..., None]
    rgb += noise(rng, (h, w, 3), rng.uniform(0.008, 0.016))
    info = {
        "count": len(ma_pos) if fine else 0,
        "fine_scale_px": period,
        "coarse_scale_px": float(2 * dr),
        "details": {
            "period_px": round(period, 4),
            "disc_side": "right" if right else "left",
            "eye": "right" if right else "left",
            "n_microaneurysm_clusters": len(ma_pos) if fine else 0,
        },
    }
    return rgb, info


GENERATORS: dict[str, GeneratorSpec] = {
    "puncta": GeneratorSpec(
        "puncta",
        "RGB",
        Question("how many cells are there?", COUNT_WORDS),
        Question("do the cells have puncta?", YES_NO),
        _render_puncta,
        "fluorescence cells (gray or green on black); fine: square lattice of puncta (two orthogonal gratings, +-80-95 "
        "%), period 2.2-2.8 px",
    ),
    "mitosis": GeneratorSpec(
        "mitosis",
        "RGB",
        Question("are there many nuclei?", YES_NO),
        Question("is there a mitotic figure?", YES_NO),
        _render_mitosis,
        "H&E-like tissue; fine: 1-3 nuclei with striated chromatin, period 2.2-2.8 px",
    ),
    "fundus": GeneratorSpec(
        "fundus",
        "RGB",
        Question("which side is the optic disc on?", LEFT_RIGHT),
        Question("are there microaneurysms?", YES_NO),
        _render_fundus,
        "retina with optic disc and vessels; fine: 3-6 clusters of dark-red dot lattices, period 2.2-2.8 px",
    ),
    "striations": GeneratorSpec(
        "striations",
        "L",
        Question("how many cells are there?", COUNT_WORDS),
        Question("are the cells striated?", YES_NO),
        _render_striations,
        "grayscale textured cells; fine: striations, period 2.2-2.8 px, +-40-60 % zero-mean modulation",
    ),
}

DEFAULT_GENERATORS = ("puncta", "mitosis", "fundus")


def check_generators(generators: str | Iterable[str]) -> tuple[str, ...]:
    """Validate generator names (a comma list or an iterable); keep order, drop duplicates."""
    if isinstance(generators, str):
        names = [g.strip() for g in generators.split(",") if g.strip()]
    else:
        try:
            names = [str(g).strip() for g in generators]
        except TypeError:
            raise BioresConfigError(f"invalid generators {generators!r}: expected names") from None
    if not names:
        raise BioresConfigError(f"no generator given; valid generators: {', '.join(GENERATORS)}")
    bad = [g for g in names if g not in GENERATORS]
    if bad:
        raise BioresConfigError(
            f"unknown generator(s) {', '.join(map(repr, bad))}; valid generators: {', '.join(GENERATORS)}"
        )
    return tuple(dict.fromkeys(names))


def _sample_labels(rng: np.random.Generator, spec: GeneratorSpec) -> dict:
    fine = bool(rng.random() < 0.5)
    coarse = spec.coarse.options[int(rng.integers(0, len(spec.coarse.options)))]
    return {"fine": fine, "coarse": coarse}


def _check_labels(spec: GeneratorSpec, labels: dict) -> dict:
    try:
        fine, coarse = labels["fine"], labels["coarse"]
    except (KeyError, TypeError):
        raise BioresConfigError("labels must be a dict with keys 'fine' (bool) and 'coarse' (answer word)") from None
    if isinstance(fine, str):
        if fine not in YES_NO:
            raise BioresConfigError(f"invalid fine label {fine!r}: expected True/False or yes/no")
        fine = fine == "yes"
    if coarse not in spec.coarse.options:
        raise BioresConfigError(
            f"invalid coarse label {coarse!r} for {spec.name}: expected one of {', '.join(spec.coarse.options)}"
        )
    return {"fine": bool(fine), "coarse": coarse}


def render_array(generator: str, rng_or_seed, size=256, *, labels: dict | None = None):
    """Like :func:`generate_item` but return ``(uint8 array, items, info)`` without a PIL image."""
    (name,) = check_generators([generator])
    spec = GENERATORS[name]
    w, h = parse_size(size)
    rng, seed = coerce_rng(rng_or_seed)
    drawn = _sample_labels(rng, spec)  # always drawn, so explicit labels do not shift the stream
    lab = drawn if labels is None else _check_labels(spec, labels)
    arr, info = spec.render(rng, w, h, lab["fine"], lab["coarse"])
    arr = to_uint8(arr)
    fine_word = "yes" if lab["fine"] else "no"
    common = {
        "generator": name,
        "native_width": w,
        "native_height": h,
        "seed": seed,
        "fine_present": lab["fine"],
        "coarse_label": lab["coarse"],
        "count": int(info["count"]),
    }
    items = [
        {
            "id": f"{name}-{seed}-coarse",
            "question": spec.coarse.text,
            "options": list(spec.coarse.options),
            "answer": lab["coarse"],
            "question_type": "coarse",
            "critical_scale_px": round(float(info["coarse_scale_px"]), 4),
            **common,
        },
        {
            "id": f"{name}-{seed}-fine",
            "question": spec.fine.text,
            "options": list(spec.fine.options),
            "answer": fine_word,
            "question_type": "fine",
            "critical_scale_px": round(float(info["fine_scale_px"]), 4),
            **common,
        },
    ]
    return arr, items, info


def generate_item(generator: str, rng_or_seed, size=(256, 256), *, labels: dict | None = None):
    """Render one image and its two questions.

    Args:
        generator: one of :data:`GENERATORS` (``puncta``, ``mitosis``, ``fundus``, ``striations``).
        rng_or_seed: an int seed in [0, 2**32) or a ``numpy.random.Generator`` (a seed is drawn
            from it); the returned items record the seed that reproduces the image exactly.
        size: native size as ``(width, height)``, an int, or ``"WxH"``.
        labels: optional ``{"fine": bool, "coarse": answer}`` to force the answers (balanced
            datasets); otherwise both are drawn from the seed.

    Returns:
        ``(PIL.Image, [coarse_item, fine_item])``; each item holds ``id, generator, question,
        options, answer, question_type, native_width, native_height, critical_scale_px, seed,
        fine_present, coarse_label, count``.
    """
    arr, items, _ = render_array(generator, rng_or_seed, size, labels=labels)
    mode = GENERATORS[items[0]["generator"]].mode
    return Image.fromarray(arr, mode=mode), items


_TOKEN_RE = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Split a question / answer into the words used by :func:`vocabulary` (``?`` is a word)."""
    return _TOKEN_RE.findall(text.lower())


def vocabulary(generators: str | Sequence[str] = tuple(GENERATORS)) -> list[str]:
    """Sorted list of every word (see :func:`tokenize`) in the questions, options and answers."""
    words: set[str] = set()
    for name in check_generators(generators):
        spec = GENERATORS[name]
        for q in (spec.coarse, spec.fine):
            words.update(tokenize(q.text))
            for opt in q.options:
                words.update(tokenize(opt))
    return sorted(words)
