"""Text views of the cells: the markdown table and the train x inference matrix."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .collect import Cell, level_value


def _order(values: Iterable[str]) -> list[str]:
    return sorted(set(values), key=lambda r: (level_value(r), r))  # µm, px, native; max_pixels=N by N


def markdown_table(cells: Sequence[Cell]) -> str:
    lines = [
        "| model | trained at | data set | inference | accuracy | ± stderr | n | visual tokens / image |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for c in sorted(cells, key=lambda c: (c.dataset, c.run, c.res_value)):
        tokens = "-" if c.visual_tokens is None else f"{'~' if c.tokens_estimated else ''}{c.visual_tokens:.0f}"
        stderr = "-" if c.stderr is None else f"{100 * c.stderr:.1f}"
        lines.append(
            f"| {c.run} | {c.train or '-'} | {c.dataset} | {c.resolution} | {100 * c.accuracy:.1f} | {stderr} | {c.n} "
            f"| {tokens} |"
        )
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


def _change(eff: tuple[int, int], got: tuple[int, int]) -> str | None:
    """How a processor changed one sweep image: 'upsampled', 'capped', 'cropped' or None."""
    ew, eh = eff
    gw, gh = got
    if not (ew and eh and gw and gh):
        return None
    ratio = (gw * gh) / (ew * eh)
    if ratio > 1.3:
        return "upsampled"
    if ratio < 0.75:
        return "capped"
    if abs((gw / gh) / (ew / eh) - 1) > 0.15:
        return "cropped"
    return None


def _size_text(sizes: Sequence[tuple[int, int]]) -> str:
    common = sorted({tuple(s) for s in sizes})
    return ", ".join(f"{w}x{h}" for w, h in common[:3]) + (" ..." if len(common) > 3 else "")


def resolution_warnings(cells: Sequence[Cell]) -> list[str]:
    """One line per (model, data set) whose processor upsampled, capped or cropped the sweep
    images, naming the variants that collapsed onto the same input (same sizes and tokens)."""
    out: list[str] = []
    groups: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        if c.consumed_sizes and c.visual_tokens is not None and not c.tokens_estimated:
            groups.setdefault((c.run, c.dataset), []).append(c)
    for (run, dataset), group in sorted(groups.items()):
        changed: dict[str, list[str]] = {}
        for c in sorted(group, key=lambda c: c.res_value):
            pairs = zip(c.eff_sizes, c.consumed_sizes) if len(c.eff_sizes) == len(c.consumed_sizes) else []
            kinds = {k for k in (_change(tuple(e), tuple(g)) for e, g in pairs) if k}
            for kind in sorted(kinds):
                changed.setdefault(kind, []).append(c.resolution)
        by_input: dict[tuple, list[Cell]] = {}
        for c in group:
            by_input.setdefault(
                (round(c.visual_tokens, 1), tuple(sorted(set(map(tuple, c.consumed_sizes))))), []
            ).append(c)
        collapsed = [  # variants biores sent at different sizes that reached the tower identical
            sorted(v, key=lambda c: c.res_value)
            for v in by_input.values()
            if len({tuple(sorted(set(map(tuple, c.eff_sizes)))) for c in v}) > 1
        ]
        if not changed and not collapsed:
            continue
        how = (
            "; ".join(f"{kind} at {', '.join(res)}" for kind, res in sorted(changed.items()))
            or "changed the sweep images"
        )
        line = f"{run} / {dataset}: the model's processor {how}"
        for same in sorted(collapsed, key=lambda v: v[0].res_value):
            line += (
                f"; variants {', '.join(c.resolution for c in same)} collapse to the same input "
                f"({_size_text(same[0].consumed_sizes)}, {same[0].visual_tokens:.0f} visual tokens)"
            )
        out.append(line)
    return out
