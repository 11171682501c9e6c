"""``biores report``: accuracy against inference resolution, train x inference matrix, cost.

Reads lmms-eval output folders (``*_results.json``, ``*_samples_<task>.jsonl``) and writes
``report.md``, ``report.html`` (self-contained, with the flip gallery), ``curve.png`` and
``heatmap.png`` atomically into ``--out``. docs/report.md, docs/report_html.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import BioresConfigError
from ..io_utils import atomic_write_text
from .collect import Cell, budget_collapse_warnings, collect, missing_token_warnings
from .metrics import report_section, robustness
from .plots import plot_curves, plot_heatmap
from .tables import markdown_table, matrix, matrix_text, resolution_warnings

__all__ = [
    "Cell",
    "collect",
    "markdown_table",
    "matrix",
    "matrix_text",
    "plot_curves",
    "plot_heatmap",
    "resolution_warnings",
    "write_report",
]


def write_report(
    cells: Sequence[Cell],
    out: str | Path,
    *,
    title: str = "biores resolution report",
    notes: str = "",
    skipped: dict[str, list[int]] | None = None,
    unreadable: Sequence[tuple[str, str]] = (),
    gallery: Any = None,
    gallery_cap: int = 0,
) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"curve": plot_curves(cells, out / "curve.png")}
    heat = plot_heatmap(cells, out / "heatmap.png")
    parts = [f"# {title}\n"]
    if notes:
        parts.append(notes.rstrip() + "\n")
    warnings = resolution_warnings(cells) + budget_collapse_warnings(cells)
    if warnings:
        parts.append("## Warning: the model did not see the sweep's resolutions\n")
        parts.append(
            "\n".join(f"- {w}" for w in warnings) + "\n\nVisual tokens below are the counts the model consumed "
            "(docs/accounting.md gives each wrapper's honest settings).\n"
        )
    missing = missing_token_warnings(cells)
    if missing:
        parts.append("## Samples without a visual-token count\n\n" + "\n".join(f"- {m}" for m in missing) + "\n")
    if unreadable:
        parts.append("## Skipped unreadable files\n")
        parts.append("\n".join(f"- `{path}`: {reason}" for path, reason in unreadable) + "\n")
    parts.append("## Accuracy by inference resolution\n")
    parts.append(markdown_table(cells) + "\n")
    parts.append(
        "Accuracy and standard error in percentage points; `~` marks visual tokens estimated from image sizes.\n"
    )
    if heat is not None:
        files["heatmap"] = heat
        for dataset in sorted({c.dataset for c in cells if c.train is not None}):
            rows, cols, table = matrix(cells, dataset)
            parts.append(f"## Train x inference resolution: {dataset}\n\n```\n{matrix_text(rows, cols, table)}\n```\n")
        parts.append("![train x inference heatmap](heatmap.png)\n")
    parts.append("![accuracy vs resolution and visual tokens](curve.png)\n")
    parts.append(report_section(cells, out, files, skipped))  # Res-Bench's metrics, robustness.json
    files["report"] = atomic_write_text(out / "report.md", "\n".join(parts))
    from .html import write_html

    files["html"] = write_html(cells, out, files, title=title, warnings=warnings, gallery=gallery, cap=gallery_cap)
    return files


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="lmms-eval --output_path folders (or *_results.json files)")
    parser.add_argument("--out", default="biores_report", help="folder for report.md, curve.png, heatmap.png")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="FOLDER=TRAIN_RES",
        help="training resolution of a results folder",
    )
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument(
        "--token-policy", default="native", help="policy used to estimate visual tokens when the model did not log them"
    )
    parser.add_argument(
        "--gallery",
        type=int,
        default=12,
        metavar="N",
        help="report.html: at most N flipping samples per model and sweep (0: no gallery)",
    )


def run(args: argparse.Namespace) -> int:
    labels = {}
    for item in args.label:
        if "=" not in item:
            raise BioresConfigError(f"--label must be FOLDER=TRAIN_RES, got {item!r}")
        folder, label = item.rsplit("=", 1)
        labels[folder] = label
    import sys

    from .metrics import markdown, skipped_image_ids

    unreadable: list[tuple[str, str]] = []
    cells = collect(
        args.results, labels=labels, metric=args.metric, token_policy=args.token_policy, unreadable=unreadable
    )
    for path, reason in unreadable:
        print(f"biores report: skipped unreadable {path} ({reason})", file=sys.stderr)
    for line in budget_collapse_warnings(cells) + missing_token_warnings(cells):
        print(f"biores report: warning: {line}", file=sys.stderr)
    for line in resolution_warnings(cells):
        print(f"biores report: warning: {line}", file=sys.stderr)
    gallery = None
    if args.gallery < 0:
        raise BioresConfigError(f"--gallery must be 0 or more, got {args.gallery}")
    if args.gallery:
        from .gallery import attach_images, find_flips

        gallery = attach_images(find_flips(args.results, args.gallery, metric=args.metric, labels=labels))
        for prefix, note in sorted(gallery.notes.items()):
            print(f"biores report: gallery: {prefix}: {note}", file=sys.stderr)
    files = write_report(
        cells,
        args.out,
        skipped=skipped_image_ids(args.results),
        unreadable=unreadable,
        gallery=gallery,
        gallery_cap=args.gallery,
    )
    print(markdown_table(cells))
    print("\n" + markdown(robustness(cells)))
    for dataset in sorted({c.dataset for c in cells if c.train is not None}):
        print(f"\n{dataset}\n" + matrix_text(*matrix(cells, dataset)))
    print("\nwrote " + ", ".join(str(p) for p in files.values()))
    return 0
