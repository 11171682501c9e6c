"""``biores report``: accuracy against inference resolution, train x inference matrix, cost.

    biores report results/low results/native results/mixed --out report/ \\
        [--label results/low=64 --label results/native=native]

Reads lmms-eval output folders (``*_results.json`` and, when logged, ``*_samples_<task>.jsonl``)
and writes, atomically, into ``--out``:

* ``report.md``: one row per (model, data set, inference resolution) with accuracy, its
  standard error, the sample count and the visual tokens per image;
* ``curve.png``: accuracy against inference resolution and against visual tokens;
* ``heatmap.png`` (when training resolutions are known): the train x inference matrix.

A run's *training resolution* comes from ``--label`` or from the checkpoint's saved biores
config (``train_resolution_label``, else ``mixed_resolution``, else ``image_aspect_ratio``).
Visual tokens come from the samples the model logged (``biores_llava`` logs them); otherwise
they are estimated from the logged effective image sizes under ``--token-policy`` (marked ``~``).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import BioresConfigError
from .io_utils import atomic_write_bytes, atomic_write_text

_TASK = re.compile(r"^(biores_[a-z0-9_]+?)_(native|\d+)$")


@dataclass
class Cell:
    """One (run, data set, inference resolution) measurement."""

    run: str
    train: str | None
    dataset: str
    resolution: str  # "224" ... or "native"
    accuracy: float
    stderr: float | None
    n: int
    visual_tokens: float | None
    tokens_estimated: bool = False
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def res_value(self) -> float:
        return math.inf if self.resolution == "native" else float(self.resolution)


def _results_files(folder: Path) -> list[Path]:
    if folder.is_file() and folder.name.endswith("results.json"):
        return [folder]
    files = sorted(Path(p) for p in glob.glob(str(folder / "**" / "*results.json"), recursive=True))
    return files


def _samples_file(results_file: Path, task: str) -> Path | None:
    stamp = results_file.name[: -len("_results.json")]
    candidate = results_file.parent / f"{stamp}_samples_{task}.jsonl"
    if candidate.is_file():
        return candidate
    found = sorted(results_file.parent.glob(f"*_samples_{task}.jsonl"))
    return found[-1] if found else None


def _model_path(config: dict) -> str | None:
    args = str(config.get("model_args") or "")
    for part in args.split(","):
        if part.startswith("pretrained="):
            return part[len("pretrained="):]
    return None


def _train_label(config: dict) -> str | None:
    path = _model_path(config)
    if not path:
        return None
    file = Path(path) / "biores_config.json"
    if not file.is_file():
        return None
    data = json.loads(file.read_text())
    return data.get("train_resolution_label") or data.get("mixed_resolution") or data.get("image_aspect_ratio")


def _binomial_stderr(scores: Sequence[float]) -> float | None:
    n = len(scores)
    if n < 2:
        return None
    mean = sum(scores) / n
    var = sum((s - mean) ** 2 for s in scores) / (n - 1)
    return math.sqrt(var / n)


def _read_samples(path: Path, metric: str) -> tuple[list[float], list[float], list[tuple[int, int]]]:
    scores, tokens, sizes = [], [], []
    with path.open() as handle:
        for line in handle:
            if not line.strip():
                continue
            sample = json.loads(line)
            record = sample.get(metric)
            if isinstance(record, dict) and "score" in record:
                scores.append(float(record["score"]))
                if record.get("eff_size"):
                    sizes.append(tuple(record["eff_size"]))
            elif isinstance(record, (int, float)):
                scores.append(float(record))
            for counts in sample.get("token_counts") or []:
                if isinstance(counts, dict) and counts.get("visual_tokens") is not None:
                    tokens.append(float(counts["visual_tokens"]))
    return scores, tokens, sizes


def collect(
    folders: Iterable[str | os.PathLike],
    *,
    labels: dict[str, str] | None = None,
    metric: str = "accuracy",
    token_policy: str = "native",
) -> list[Cell]:
    """Every biores sweep measurement in the given lmms-eval output folders."""
    from .configuration import ResolutionConfig

    labels = {str(Path(k).resolve()): v for k, v in (labels or {}).items()}
    estimator = ResolutionConfig(image_aspect_ratio=token_policy).policy()
    cells: list[Cell] = []
    for folder in folders:
        folder = Path(folder)
        files = _results_files(folder)
        if not files:
            raise BioresConfigError(f"no lmms-eval *_results.json under {folder}")
        for results_file in files:
            data = json.loads(results_file.read_text())
            config = data.get("config") or {}
            run = labels.get(str(folder.resolve()), None)
            train = run or _train_label(config)
            run_name = run or Path(_model_path(config) or folder).name
            for task, values in (data.get("results") or {}).items():
                m = _TASK.match(task)
                if not m or f"{metric},none" not in values:
                    continue
                dataset = m.group(1)[len("biores_"):]
                accuracy = float(values[f"{metric},none"])
                stderr = values.get(f"{metric}_stderr,none")
                stderr = float(stderr) if isinstance(stderr, (int, float)) else None
                n = int((data.get("n-samples") or {}).get(task, {}).get("effective", 0))
                tokens, estimated = None, False
                extra = {k.split(",")[0]: float(v) for k, v in values.items() if k.endswith(",none") and "stderr" not in k and isinstance(v, (int, float)) and not k.startswith(f"{metric},")}
                samples = _samples_file(results_file, task)
                if samples is not None:
                    scores, token_list, sizes = _read_samples(samples, metric)
                    if scores:
                        n = len(scores)
                        stderr = _binomial_stderr(scores) if stderr is None else stderr
                    if token_list:
                        tokens = sum(token_list) / len(token_list)
                    elif sizes:
                        tokens = sum(estimator.visual_tokens(w, h) for w, h in sizes if w and h) / len(sizes)
                        estimated = True
                cells.append(Cell(run_name, train, dataset, m.group(2), accuracy, stderr, n, tokens, estimated, extra))
    if not cells:
        raise BioresConfigError("the results hold no biores_<dataset>_<resolution> tasks")
    return cells


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


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return buffer.getvalue()


def plot_curves(cells: Sequence[Cell], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({c.dataset for c in cells})
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.6 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        mine = [c for c in cells if c.dataset == dataset]
        cols = _order(c.resolution for c in mine)
        for run in sorted({c.run for c in mine}):
            series = sorted((c for c in mine if c.run == run), key=lambda c: c.res_value)
            label = f"{run} (trained {series[0].train})" if series[0].train and series[0].train != run else run
            xs = [cols.index(c.resolution) for c in series]
            ys = [100 * c.accuracy for c in series]
            errs = [100 * (c.stderr or 0.0) for c in series]
            axes[row][0].errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
            with_tokens = [c for c in series if c.visual_tokens]
            if with_tokens:
                axes[row][1].plot([c.visual_tokens for c in with_tokens], [100 * c.accuracy for c in with_tokens], marker="o", label=label)
        axes[row][0].set_xticks(range(len(cols)), cols)
        axes[row][0].set_xlabel("inference resolution (longest side, px)")
        axes[row][0].set_ylabel("accuracy (%)")
        axes[row][0].set_title(f"{dataset}: accuracy vs inference resolution")
        axes[row][1].set_xscale("log")
        axes[row][1].set_xlabel("visual tokens per image")
        axes[row][1].set_title(f"{dataset}: accuracy vs visual tokens")
        for ax in axes[row]:
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return path


def plot_heatmap(cells: Sequence[Cell], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({c.dataset for c in cells if c.train is not None})
    if not datasets:
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(1.6 + 1.3 * max(len(_order(c.resolution for c in cells)), 3) * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows, cols, table = matrix(cells, dataset)
        values = [[float("nan") if v is None else 100 * v for v in row] for row in table]
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("inference resolution")
        ax.set_ylabel("training resolution")
        ax.set_title(f"{dataset}: accuracy (%)")
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return path


def write_report(cells: Sequence[Cell], out: str | Path, *, title: str = "biores resolution report", notes: str = "") -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"curve": plot_curves(cells, out / "curve.png")}
    heat = plot_heatmap(cells, out / "heatmap.png")
    parts = [f"# {title}\n"]
    if notes:
        parts.append(notes.rstrip() + "\n")
    parts.append("## Accuracy by inference resolution\n")
    parts.append(markdown_table(cells) + "\n")
    parts.append("Accuracy and standard error in percentage points; `~` marks visual tokens estimated from image sizes.\n")
    if heat is not None:
        files["heatmap"] = heat
        for dataset in sorted({c.dataset for c in cells if c.train is not None}):
            rows, cols, table = matrix(cells, dataset)
            parts.append(f"## Train x inference resolution: {dataset}\n\n```\n{matrix_text(rows, cols, table)}\n```\n")
        parts.append("![train x inference heatmap](heatmap.png)\n")
    parts.append("![accuracy vs resolution and visual tokens](curve.png)\n")
    files["report"] = atomic_write_text(out / "report.md", "\n".join(parts))
    return files


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="lmms-eval --output_path folders (or *_results.json files)")
    parser.add_argument("--out", default="biores_report", help="folder for report.md, curve.png, heatmap.png")
    parser.add_argument("--label", action="append", default=[], metavar="FOLDER=TRAIN_RES", help="training resolution of a results folder")
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--token-policy", default="native", help="policy used to estimate visual tokens when the model did not log them")


def run(args: argparse.Namespace) -> int:
    labels = {}
    for item in args.label:
        if "=" not in item:
            raise BioresConfigError(f"--label must be FOLDER=TRAIN_RES, got {item!r}")
        folder, label = item.rsplit("=", 1)
        labels[folder] = label
    cells = collect(args.results, labels=labels, metric=args.metric, token_policy=args.token_policy)
    files = write_report(cells, args.out)
    print(markdown_table(cells))
    for dataset in sorted({c.dataset for c in cells if c.train is not None}):
        print(f"\n{dataset}\n" + matrix_text(*matrix(cells, dataset)))
    print("\nwrote " + ", ".join(str(p) for p in files.values()))
    return 0
