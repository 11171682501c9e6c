"""Text views of the cells: the markdown table and the train x inference matrix."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from .collect import Cell

def _order(values: Iterable[str]) -> list[str]:
    return sorted(set(values), key=lambda r: math.inf if r == "native" else float(r) if r.replace(".", "").isdigit() else 1e18)


def markdown_table(cells: Sequence[Cell]) -> str:
    lines = [
        "| model | trained at | data set | inference | accuracy | ± stderr | n | visual tokens / image |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for c in sorted(cells, key=lambda c: (c.dataset, c.run, c.res_value)):
        tokens = "-" if c.visual_tokens is None else f"{'~' if c.tokens_estimated else ''}{c.visual_tokens:.0f}"
        stderr = "-" if c.stderr is None else f"{100 * c.stderr:.1f}"
        lines.append(f"| {c.run} | {c.train or '-'} | {c.dataset} | {c.resolution} | {100 * c.accuracy:.1f} | {stderr} | {c.n} | {tokens} |")
    return "\n".join(lines)


def matrix(cells: Sequence[Cell], dataset: str | None = None) -> tuple[list[str], list[str], list[list[float | None]]]:
    """Train x inference accuracy matrix (rows: training labels, columns: inference)."""
    chosen = [c for c in cells if c.train is not None and (dataset is None or c.dataset == dataset)]
    rows = _order(c.train for c in chosen)  # type: ignore[misc]
    cols = _order(c.resolution for c in chosen)
    table: list[list[float | None]] = [[None] * len(cols) for _ in rows]
    for c in chosen:
        table[rows.index(c.train)][cols.index(c.resolution)] = c.accuracy  # type: ignore[arg-type]
    return rows, cols, table


def matrix_text(rows: Sequence[str], cols: Sequence[str], table: Sequence[Sequence[float | None]]) -> str:
    width = max([len("train \\ infer")] + [len(r) for r in rows]) + 2
    out = ["train \\ infer".ljust(width) + "".join(c.rjust(9) for c in cols)]
    for r, row in zip(rows, table):
        out.append(r.ljust(width) + "".join(("-" if v is None else f"{100 * v:.1f}").rjust(9) for v in row))
    return "\n".join(out)


