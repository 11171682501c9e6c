"""Robustness of accuracy to inference resolution, per model and task (``robustness.json``).

Spearman's rho between resolution and accuracy, ACE (the sum of ``|A(i+1) - A(i)|`` over the
sorted levels) and RCE (ACE / mean accuracy) as Res-Bench defines them (C. Li et al., "Res-Bench:
Benchmarking the Robustness of Multimodal Large Language Models to Dynamic Resolution Input",
AAAI 2026, arXiv:2510.16926), plus the critical resolution and accuracy per visual token.
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..io_utils import atomic_write_text
from .collect import Cell

CITATION = "Res-Bench (arXiv:2510.16926): Spearman's rho, ACE = sum |A(i+1) - A(i)|, RCE = ACE / mean accuracy"
SCHEMA = "biores.robustness/1"


@dataclass
class Robustness:
    """One (model, data set) sweep: its levels in increasing order and the robustness numbers."""

    run: str
    train: str | None
    dataset: str
    levels: list[str]
    accuracy: list[float]
    stderr: list[float | None]
    visual_tokens: list[float | None]
    spearman_rho: float | None
    ace: float
    rce: float | None
    critical_resolution: str | None
    accuracy_per_visual_token: list[float | None]
    skipped_images: int = 0


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's r of average ranks); ``None`` if either side is constant."""
    if len(x) != len(y) or len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def ace(accuracy: Sequence[float]) -> float:
    """Res-Bench's ACE: total absolute change of accuracy between neighbouring sorted levels."""
    return float(sum(abs(b - a) for a, b in zip(accuracy, accuracy[1:])))


def rce(accuracy: Sequence[float]) -> float | None:
    """Res-Bench's RCE: ACE relative to the mean accuracy (``None`` when that is 0)."""
    mean = sum(accuracy) / len(accuracy) if accuracy else 0.0
    return None if mean == 0 else ace(accuracy) / mean


def critical_resolution(levels: Sequence[str], accuracy: Sequence[float], stderr: Sequence[float | None]) -> str | None:
    """The lowest level whose accuracy is within one standard error of native's (``None``
    without a native level). Without a native standard error only an equal accuracy counts."""
    if "native" not in levels:
        return None
    native = levels.index("native")
    band = stderr[native] or 0.0
    for level, acc in zip(levels, accuracy):
        if abs(acc - accuracy[native]) <= band + 1e-12:
            return level
    return "native"


def robustness(cells: Iterable[Cell]) -> list[Robustness]:
    """One :class:`Robustness` per (model, data set) with at least two inference levels."""
    groups: dict[tuple[str, str | None, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.run, cell.train, cell.dataset), []).append(cell)
    rows = []
    for (run, train, dataset), group in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0])):
        group = sorted(group, key=lambda c: c.res_value)
        if len(group) < 2:
            continue
        acc = [c.accuracy for c in group]
        ranks = list(range(len(group)))  # the levels in increasing order; native is the highest
        rows.append(
            Robustness(
                run=run,
                train=train,
                dataset=dataset,
                levels=[c.resolution for c in group],
                accuracy=acc,
                stderr=[c.stderr for c in group],
                visual_tokens=[c.visual_tokens for c in group],
                spearman_rho=spearman(ranks, acc),
                ace=ace(acc),
                rce=rce(acc),
                critical_resolution=critical_resolution([c.resolution for c in group], acc, [c.stderr for c in group]),
                accuracy_per_visual_token=[c.accuracy / c.visual_tokens if c.visual_tokens else None for c in group],
                skipped_images=int(sum(c.extra.get("biores_skipped_images", 0) for c in group)),
            )
        )
    return rows


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def markdown(rows: Sequence[Robustness]) -> str:
    """The report section: one row per (model, data set)."""
    lines = [
        "| model | data set | levels | Spearman ρ | ACE (points) | RCE | critical resolution | points / 1k visual "
        "tokens (native) | skipped images |",
        "|---|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        per_k = r.accuracy_per_visual_token[-1]
        lines.append(
            f"| {r.run} | {r.dataset} | {', '.join(r.levels)} | {_num(r.spearman_rho, '.2f')} | {100 * r.ace:.1f} "
            f"| {_num(r.rce, '.3f')} | {r.critical_resolution or 'n/a'} | "
            f"{_num(None if per_k is None else 100_000 * per_k, '.2f')} "
            f"| {r.skipped_images} |"
        )
    return "\n".join(lines)


def write_json(rows: Sequence[Robustness], path: str | Path, skipped: dict[str, list[int]] | None = None) -> Path:
    """``robustness.json``: the rows with their definitions and source, citable as they are."""
    payload = {
        "schema": SCHEMA,
        "source": CITATION,
        "definitions": {
            "accuracy": "fraction correct at each level, levels in increasing order, native last",
            "spearman_rho": "Spearman's rank correlation between level order and accuracy (null if constant)",
            "ace": "sum over neighbouring sorted levels of |A(i+1) - A(i)| (fraction units)",
            "rce": "ace / mean accuracy over the levels",
            "critical_resolution": "lowest level whose accuracy is within one standard error of native",
            "accuracy_per_visual_token": "accuracy / mean visual tokens per image at each level",
        },
        "rows": [asdict(r) for r in rows],
        "skipped_image_ids": skipped or {},
    }
    return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def skipped_image_ids(folders: Iterable[str | Path]) -> dict[str, list[int]]:
    """``{task: doc ids}`` of the docs a run skipped for bad images, from its samples logs."""
    found: dict[str, list[int]] = {}
    for folder in folders:
        folder = Path(folder)
        base = folder.parent if folder.is_file() else folder
        for path in sorted(glob.glob(str(base / "**" / "*_samples_*.jsonl"), recursive=True)):
            with open(path, errors="replace") as handle:
                for line in handle:
                    try:  # an unreadable line: collect() lists the file as skipped
                        record = json.loads(line).get("biores_skipped_images") if line.strip() else None
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(record, dict) and record.get("skipped"):
                        found.setdefault(str(record.get("task")), []).append(int(record.get("doc_id", -1)))
    return {task: sorted(set(ids)) for task, ids in found.items()}


def report_section(
    cells: Sequence[Cell], out: Path, files: dict[str, Path], skipped: dict[str, list[int]] | None = None
) -> str:
    """The ``report.md`` section (the table, the definitions, skipped images); writes ``robustness.json``."""
    rows = robustness(cells)
    files["robustness"] = write_json(rows, Path(out) / "robustness.json", skipped)
    text = "## Robustness to inference resolution\n\n" + (
        markdown(rows) if rows else "Fewer than two levels per model and data set."
    )
    text += (
        f"\n\nMetrics as {CITATION}; ACE in accuracy points. The critical resolution is the lowest level within one "
        "standard error of native. `robustness.json` holds the numbers.\n"
    )
    for task, ids in sorted((skipped or {}).items()):
        text += f"\nSkipped for bad images in `{task}`: {len(ids)} doc(s), ids {', '.join(map(str, ids))}.\n"
    return text
