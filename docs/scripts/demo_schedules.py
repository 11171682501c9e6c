"""Producer of docs/demo_results.md's schedule comparison and of demo_compute.png.

For each seed: the demo's data, vision tower, 64 px and native models once (the demo's own cached
stages), then one mixed model per recipe row at the same settings otherwise, each evaluated by
lmms-eval on the demo's sweep; prints the comparison as a markdown table and plots accuracy against
training compute (visual tokens seen) for every run. Conditions (threads, load) are printed with it.

    python docs/scripts/demo_schedules.py --out schedules/ --seeds 0,1,2 [--rows demo,draw] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

#: recipe rows: name -> (label, DemoConfig changes for the mixed model)
ROWS = {
    "balanced50_800": (
        "balanced 50/50, 800 steps",
        {"mixed": "64:0.5,native:0.5", "mixed_schedule": "balanced", "mixed_steps": 800},
    ),
    "balanced60": ("balanced 64:0.6, 1,200 steps", {"mixed": "64:0.6,native:0.4", "mixed_schedule": "balanced"}),
    "draw70": ("draw 64:0.7, 1,200 steps", {"mixed_schedule": "draw"}),
    "dataset": (
        "dataset (every image at both levels), 1,200 steps",
        {"mixed": "64:0.5,native:0.5", "mixed_schedule": "dataset"},
    ),
    "paired": (
        "paired (each image at both levels in one batch), 1,200 steps",
        {"mixed": "64:0.5,native:0.5", "mixed_schedule": "paired"},
    ),
    "demo": ("**balanced 64:0.7, 1,200 steps (the demo)**", {}),
}


def run_row(cfg, out: Path, row: str, log) -> dict:
    from biores_plugin.demo import DONE, findings, stage_data, stage_encoder, stage_eval, stage_train
    from biores_plugin.report import collect

    data = stage_data(cfg, out, log)
    encoder = stage_encoder(cfg, out, log)
    runs = {m: stage_train(cfg, out, data, m, log, encoder) for m in ("low", "native")}
    row_cfg = replace(cfg, **ROWS[row][1])
    row_out = out / "rows" / row
    runs["mixed"] = stage_train(row_cfg, row_out, data, "mixed", log, encoder)
    evals = stage_eval(row_cfg, row_out, data, runs, log)
    cells = collect(list(evals.values()), labels={str(evals[m]): row_cfg.label(m) for m in evals})
    _, verdicts = findings(cells, row_cfg, runs)
    acc = {(c.train, c.resolution): 100 * c.accuracy for c in cells}
    tokens = {m: json.loads((runs[m] / DONE).read_text())["stats"]["visual_tokens_seen"] for m in runs}
    return {"acc": acc, "verdicts": verdicts, "tokens": tokens, "levels": list(row_cfg.eval_resolutions)}


def table(results: dict[str, dict[int, dict]]) -> str:
    lines = [
        "| mixed model | seed | mixed @64 / @128 / @native | gap to the best other model @64 / @native "
        "| finding 3 | cost (M tokens) |",
        "|---|---|---|---|---|---|",
    ]
    for row, per_seed in results.items():
        seeds = sorted(per_seed)
        accs, gaps, holds, cost = [], [], [], 0.0
        for seed in seeds:
            r = per_seed[seed]
            accs.append(" / ".join(f"{r['acc'].get(('mixed', lvl), float('nan')):.1f}" for lvl in r["levels"]))
            best = {
                lvl: max(v for (t, res), v in r["acc"].items() if res == lvl and t != "mixed")
                for lvl in ("64", "native")
            }
            gaps.append(" / ".join(f"{best[lvl] - r['acc'][('mixed', lvl)]:.1f}" for lvl in ("64", "native")))
            holds.append(bool(r["verdicts"].get("finding3")))
            cost = r["tokens"]["mixed"] / 1e6
        verdict = (
            "holds on all" if all(holds) else ("fails" if not any(holds) else f"holds on {sum(holds)}/{len(holds)}")
        )
        lines.append(
            f"| {ROWS[row][0]} | {' / '.join(map(str, seeds))} | {'; '.join(accs)} | {'; '.join(gaps)} "
            f"| {verdict} | {cost:.2f} |"
        )
    return "\n".join(lines)


def plot(results: dict[str, dict[int, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors: dict[str, str] = {}  # one colour per model / recipe, every seed alike
    for row, per_seed in results.items():
        for seed, r in per_seed.items():
            for model, marker in (("low", "v"), ("native", "^"), ("mixed", "o")):
                if model != "mixed" and row != "demo":
                    continue  # the specialists are shared by every row: plotted once
                label = {"low": "64 px model", "native": "native model"}.get(model, ROWS[row][0].strip("*"))
                train_label = {"low": "64", "native": "native", "mixed": "mixed"}[model]
                color = colors.setdefault(label, f"C{len(colors) % 10}")
                ax.scatter(
                    [r["tokens"][model] / 1e6],
                    [r["acc"].get((train_label, "native"))],
                    marker=marker,
                    color=color,
                    label=label if seed == min(per_seed) else None,
                )
    ax.set_xlabel("training compute (M visual tokens seen)")
    ax.set_ylabel("accuracy at native resolution (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--specialist-steps", type=int, default=None, help="steps of the 64 px and native models (default the demo's)"
    )
    parser.add_argument("--quick", action="store_true", help="the quick demo's sizes (a smoke run of this script)")
    args = parser.parse_args(argv)
    import torch

    from biores_plugin.demo import DemoConfig, parse_seeds

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    torch.set_num_threads(args.threads)
    start, out = time.time(), Path(args.out)
    results: dict[str, dict[int, dict]] = {}
    for seed in parse_seeds(args.seeds):
        cfg = DemoConfig.quick(seed) if args.quick else DemoConfig(seed=seed)
        cfg = replace(cfg, threads=args.threads, models=("low", "native", "mixed"))
        if args.quick:
            cfg = replace(cfg, mixed_steps=cfg.steps, eval_resolutions=("64", "128", "native"))
        if args.specialist_steps:
            cfg = replace(cfg, steps=args.specialist_steps)
        for row in rows:
            results.setdefault(row, {})[seed] = run_row(cfg, out / f"seed{seed}", row, print)
    text = table(results)
    plot(results, out / "demo_compute.png")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\n{text}\n\nconditions: {args.threads} torch thread(s), {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at the end, "
        f"torch {torch.__version__}, {time.time() - start:.0f} s; wrote {out / 'demo_compute.png'}"
    )
    (out / "schedules.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
