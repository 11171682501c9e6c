"""``biores demo``'s verdicts: the study's three findings checked against the measured matrix, per seed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .demo_state import DONE, DemoConfig


def findings(cells: Sequence[Any], cfg: DemoConfig, runs: dict[str, Path]) -> tuple[str, dict[str, Any]]:
    """The study's three findings, checked against the measured matrix."""
    acc = {(c.train, c.resolution): 100 * c.accuracy for c in cells}
    low, native = str(cfg.low), "native"
    lines, verdicts = [], {}
    if (native, native) in acc and (low, low) in acc:
        gap = acc[(native, native)] - acc[(low, low)]
        verdicts["finding1_gap"] = gap
        verdicts["finding1"] = gap >= 15
        lines.append(
            f"1. Native-trained, native-evaluated ({acc[(native, native)]:.1f}) vs low-trained, low-evaluated "
            f"({acc[(low, low)]:.1f}): {gap:+.1f} points -> {'HOLDS' if gap >= 15 else 'does not hold'} (target >= 15)."
        )
    if (low, low) in acc and (low, native) in acc:
        drop = acc[(low, low)] - acc[(low, native)]
        verdicts["finding2_drop"] = drop
        verdicts["finding2"] = drop >= 10
        extra = ""
        if (native, low) in acc:
            extra = (
                f" The native model evaluated at {low} px scores {acc[(native, low)]:.1f} vs "
                f"{acc[(native, native)]:.1f} at native."
            )
        lines.append(
            f"2. The {low}-px model loses {drop:.1f} points when evaluated at native resolution ({acc[(low, low)]:.1f} "
            f"-> {acc[(low, native)]:.1f}) -> {'HOLDS' if drop >= 10 else 'does not hold'} (target >= 10).{extra}"
        )
    if "mixed" in runs:
        worst = None
        for res in cfg.eval_resolutions:
            best = max(v for (t, r), v in acc.items() if r == res and t != "mixed")
            gap = best - acc.get(("mixed", res), float("nan"))
            worst = gap if worst is None or gap > worst else worst
        stats = {m: json.loads((runs[m] / DONE).read_text())["stats"]["visual_tokens_seen"] for m in runs}
        between = (
            min(stats[m] for m in stats if m != "mixed")
            <= stats["mixed"]
            <= max(stats[m] for m in stats if m != "mixed")
        )
        # "close to the best" means nothing when no model reads the image: finding 1 must hold too
        verdicts.update(
            finding3_worst_gap=worst,
            finding3=bool(worst is not None and worst <= 3 and between and verdicts.get("finding1")),
            visual_tokens_seen=stats,
        )
        lines.append(
            "3. Mixed-resolution model: "
            + (
                f"at most {worst:.1f} points below the best other model at any inference resolution "
                if worst > 0
                else f"at or above the best other model at every inference resolution (by {-worst:.1f} points or more) "
            )
            + f"(target <= 3); training cost {stats['mixed']:,} visual tokens vs {stats['low']:,} (low) and "
            f"{stats['native']:,} (native) "
            f"-> {'HOLDS' if verdicts['finding3'] else 'does not hold'}."
        )
    prior = answer_prior(cells, runs)
    if prior is not None:
        verdicts["answer_prior"] = prior
        best = max(acc.values())
        lines.append(
            f"Reference: always giving each question's most common answer scores {prior:.1f}; the best model scores "
            f"{best:.1f}"
            + (
                " -- no model learned to read the image in this budget, so the findings cannot be judged."
                if best < prior + 5
                else "."
            )
        )
    return "\n".join(lines), verdicts


def answer_prior(cells: Sequence[Any], runs: dict[str, Path]) -> float | None:
    """Accuracy of answering every question with its type's most common test answer."""
    from collections import Counter

    files = sorted((runs and next(iter(runs.values())).parent.parent / "eval").glob("**/*_samples_*.jsonl"))
    if not files:
        return None
    targets: dict[str, Counter] = {}
    for line in files[0].read_text().splitlines():
        if line.strip():
            sample = json.loads(line)
            kind = sample.get("accuracy", {}).get("question_type", "")
            targets.setdefault(kind, Counter())[str(sample.get("target"))] += 1
    total = sum(sum(c.values()) for c in targets.values())
    return 100.0 * sum(c.most_common(1)[0][1] for c in targets.values()) / total if total else None


def seed_table(summaries: dict[int, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Mean +- sd (over seeds) of every train x inference cell, and each seed's verdicts."""
    import statistics

    first = next(iter(summaries.values()))["cells"]  # every seed measures the same grid
    rows, cols = list(first), list(next(iter(first.values())))
    stats: dict[str, dict[str, list[float]]] = {}
    lines = ["train \\ infer " + "".join(f"{c:>15}" for c in cols)]
    for row in rows:
        cells = []
        for col in cols:
            values = [s["cells"][row][col] for s in summaries.values() if s["cells"].get(row, {}).get(col) is not None]
            mean = statistics.fmean(values) if values else float("nan")
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            stats.setdefault(row, {})[col] = [mean, sd]
            cells.append(f"{mean:6.1f} +- {sd:4.1f}")
        lines.append(f"{row:<14}" + "".join(f"{c:>15}" for c in cells))
    lines.append("")
    names = [k for k in ("finding1", "finding2", "finding3") if any(k in s["verdicts"] for s in summaries.values())]
    verdicts = {}
    for seed, s in summaries.items():
        v = s["verdicts"]
        verdicts[seed] = {k: bool(v.get(k)) for k in names}
        margins = {
            "finding1": ("finding1_gap", "{:+.1f}"),
            "finding2": ("finding2_drop", "-{:.1f}"),
            "finding3": ("finding3_worst_gap", "gap {:.1f}"),
        }
        parts = [
            f"finding {k[-1]} {'HOLDS' if v.get(k) else 'does not hold'} ({margins[k][1].format(v[margins[k][0]])})"
            for k in names
            if margins[k][0] in v
        ]
        lines.append(f"seed {seed}: " + "; ".join(parts))
    held = all(all(v.values()) for v in verdicts.values())
    lines.append(f"all findings hold on every seed: {'yes' if held else 'no'}")
    return "\n".join(lines), {"cells": stats, "verdicts": verdicts, "all_hold": held}
