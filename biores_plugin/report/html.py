"""``report.html``: one self-contained page (images embedded as data: URIs, no network).

Curves (accuracy against resolution and visual tokens), the train x inference heat map, the
accuracy table, the robustness table and the flip gallery (``gallery.py``).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from ..io_utils import atomic_write_text
from .collect import Cell
from .gallery import DETAIL, RIGHT, Gallery
from .metrics import CITATION, robustness

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;
color:#1b1f24;background:#fff;padding:0 16px}
h1{font-size:26px;margin-bottom:4px}
h2{font-size:20px;margin-top:32px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th{background:#f6f8fa}td.l,th.l{text-align:left}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px}
.note{color:#57606a;font-size:13px}img.fig{max-width:100%;border:1px solid #d0d7de}
.flip{border:1px solid #d0d7de;border-radius:6px;margin:12px 0;padding:10px}
.flip .q{font-weight:600;margin-bottom:4px;white-space:pre-wrap}.levels{display:flex;gap:10px;flex-wrap:wrap}
.level{border:3px solid #ccc;border-radius:6px;padding:6px;width:190px;font-size:12px}
.level.right{border-color:#2da44e;background:#f0fff4}.level.wrong{border-color:#cf222e;background:#fff5f5}
.level img.thumb{max-width:176px;max-height:176px;display:block;margin:4px auto}
.level img.detail{width:88px;height:88px;image-rendering:pixelated;display:block;margin:4px auto;
border:1px solid #999;object-fit:contain}
.resp{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-word}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _img(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img class="fig" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _row(cells: Sequence[object], left: int) -> str:
    """One table row; the first ``left`` cells left-aligned."""
    return "<tr>" + "".join(f"<td{' class=l' if i < left else ''}>{_e(v)}</td>" for i, v in enumerate(cells)) + "</tr>"


def _head(names: Sequence[str], left: int) -> str:
    return "<tr>" + "".join(f"<th{' class=l' if i < left else ''}>{_e(v)}</th>" for i, v in enumerate(names)) + "</tr>"


def accuracy_table(cells: Sequence[Cell]) -> str:
    names = ["model", "trained at", "data set", "inference", "accuracy", "± stderr", "n", "visual tokens / image"]
    rows = ["<table>", _head(names, 3)]
    for c in sorted(cells, key=lambda c: (c.dataset, c.run, c.res_value)):
        tokens = "-" if c.visual_tokens is None else f"{'~' if c.tokens_estimated else ''}{c.visual_tokens:.0f}"
        stderr = "-" if c.stderr is None else f"{100 * c.stderr:.1f}"
        values = [c.run, c.train or "-", c.dataset, c.resolution, f"{100 * c.accuracy:.1f}", stderr, c.n, tokens]
        rows.append(_row(values, 3))
    return "\n".join(rows) + "</table>"


def robustness_table(cells: Sequence[Cell]) -> str:
    rows = robustness(cells)
    if not rows:
        return "<p class=note>Fewer than two levels per model and data set.</p>"
    names = [
        "model",
        "data set",
        "levels",
        "Spearman ρ",
        "ACE (points)",
        "RCE",
        "critical resolution",
        "skipped images",
    ]
    out = ["<table>", _head(names, 3)]
    for r in rows:
        rho = "n/a" if r.spearman_rho is None else f"{r.spearman_rho:.2f}"
        rce = "n/a" if r.rce is None else f"{r.rce:.3f}"
        values = [
            r.run,
            r.dataset,
            ", ".join(r.levels),
            rho,
            f"{100 * r.ace:.1f}",
            rce,
            r.critical_resolution or "n/a",
            r.skipped_images,
        ]
        out.append(_row(values, 3))
    return "\n".join(out) + f"</table><p class=note>Metrics as {_e(CITATION)}.</p>"


def _level_html(level) -> str:
    kind = "right" if level.score >= RIGHT else "wrong"
    eff = f"{level.eff_size[0]}×{level.eff_size[1]}" if level.eff_size else "size not logged"
    res = _e(level.resolution)
    parts = [f'<div class="level {kind}"><b>{res}</b> · {kind} ({level.score:.2f})<br>handed to the model: {eff}']
    if level.consumed:
        parts.append(f"<br>tower input: {level.consumed[0]}×{level.consumed[1]}")
    for thumb, detail in zip(level.thumbs, level.details, strict=True):
        parts.append(f'<img class="thumb" alt="doc image at {res}" src="{thumb}">')
        parts.append(f'<img class="detail" alt="centre detail at {res}" src="{detail}">')
    parts.append(f'<div class="resp">→ {_e(level.response)}</div></div>')
    return "".join(parts)


GALLERY_NOTE = (
    "<p class=note>Per model and sweep, the samples whose correctness changes across inference levels, most flips "
    "first, at most {cap} (<code>--gallery N</code>). A sample is right at a level when its score is at least {right}. "
    "Thumbnails: the image the task handed the model at that level, <b>re-derived</b> from the doc image with "
    "biores' own loader and resize code (lmms-eval's logs keep sizes, not pixels), shown at most 256 px; below it "
    "the centre {detail}% of that image with its pixels as received, enlarged. 'tower input' is the size the "
    "model's processor fed its vision tower, where the model logged it.</p>"
)


def gallery_html(gallery: Gallery | None, cap: int) -> str:
    if gallery is None:
        return "<p class=note>Gallery off (<code>--gallery 0</code>).</p>"
    if not gallery.flips:
        return (
            "<p class=note>No sample changes between right and wrong across levels (or no samples logs: run "
            "lmms-eval with <code>--log_samples</code>).</p>"
        )
    out = [GALLERY_NOTE.format(cap=cap, right=RIGHT, detail=int(DETAIL * 100))]
    for (run, prefix), flips in sorted(gallery.flips.items()):
        total = gallery.total.get((run, prefix), len(flips))
        out.append(f"<h3>{_e(prefix)} · {_e(run)} — {total} flipping sample(s), {len(flips)} shown</h3>")
        if prefix in gallery.notes:
            out.append(f'<p class="warn">{_e(gallery.notes[prefix])}</p>')
        for flip in flips:
            out.append(f'<div class="flip" id="{_e(run)}-{_e(prefix)}-{flip.doc_id}">')
            out.append(f'<div class="q">doc {flip.doc_id}: {_e(flip.question)}</div>')
            out.append(f"<div>answer: <b>{_e(flip.answer)}</b> · {flip.flips} flip(s)</div>")
            out.append('<div class="levels">' + "".join(_level_html(level) for level in flip.levels) + "</div></div>")
    return "\n".join(out)


def write_html(
    cells: Sequence[Cell],
    out: Path,
    files: dict[str, Path],
    *,
    title: str,
    warnings: Sequence[str] = (),
    gallery: Gallery | None = None,
    cap: int = 0,
) -> Path:
    body = [f"<h1>{_e(title)}</h1><p class=note>Self-contained: every figure and image is embedded in this file.</p>"]
    if warnings:
        body.append(
            '<div class="warn"><b>The model did not see the sweep\'s resolutions</b><ul>'
            + "".join(f"<li>{_e(w)}</li>" for w in warnings)
            + "</ul></div>"
        )
    body.append(
        "<h2>Accuracy against inference resolution and visual tokens</h2>" + _img(files.get("curve"), "accuracy curves")
    )
    if files.get("heatmap"):
        body.append("<h2>Train × inference resolution</h2>" + _img(files.get("heatmap"), "train x inference heat map"))
    body.append(
        "<h2>Accuracy by inference resolution</h2>"
        + accuracy_table(cells)
        + "<p class=note>Percentage points; <code>~</code>: visual tokens estimated from image sizes.</p>"
    )
    body.append("<h2>Robustness to inference resolution</h2>" + robustness_table(cells))
    body.append("<h2>Flip gallery</h2>" + gallery_html(gallery, cap))
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    return atomic_write_text(Path(out) / "report.html", page)
