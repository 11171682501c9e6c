"""Read lmms-eval output folders into :class:`Cell` s: one (run, data set, resolution) each.

Accuracy and its standard error from ``*_results.json``; sample counts, visual tokens and
effective sizes from the samples log (``*_samples_<task>.jsonl``) when it was written.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import BioresConfigError

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
            if not (isinstance(record, dict) and "score" in record) and isinstance(sample.get("biores"), dict):
                record = sample["biores"] if sample["biores"].get("score") is not None else None  # a wrapped task
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


def _task_metric(data: dict, task: str, values: dict, metric: str) -> str | None:
    """``metric`` if the task reports it, else a wrapped task's own primary metric (``biores sweep``
    records it in the task's ``metadata.biores.primary_metric``)."""
    if f"{metric},none" in values:
        return metric
    metadata = ((data.get("configs") or {}).get(task) or {}).get("metadata") or {}
    items = metadata if isinstance(metadata, list) else [metadata]
    for item in items:
        primary = (item.get("biores") or {}).get("primary_metric") if isinstance(item, dict) else None
        if primary and f"{primary},none" in values:
            return primary
    return None


def collect(
    folders: Iterable[str | os.PathLike],
    *,
    labels: dict[str, str] | None = None,
    metric: str = "accuracy",
    token_policy: str = "native",
) -> list[Cell]:
    """Every biores sweep measurement in the given lmms-eval output folders."""
    from ..resolution import ResolutionConfig

    labels = {str(Path(k).resolve()): v for k, v in (labels or {}).items()}
    estimator = ResolutionConfig(image_aspect_ratio=token_policy, patch_size=14).policy()
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
                task_metric = _task_metric(data, task, values, metric) if m else None
                if task_metric is None:
                    continue
                dataset = m.group(1)[len("biores_"):]
                accuracy = float(values[f"{task_metric},none"])
                stderr = values.get(f"{task_metric}_stderr,none")
                stderr = float(stderr) if isinstance(stderr, (int, float)) else None
                if task_metric != metric and accuracy > 1.0:  # a wrapped task reporting percent
                    accuracy, stderr = accuracy / 100, None if stderr is None else stderr / 100
                n = int((data.get("n-samples") or {}).get(task, {}).get("effective", 0))
                tokens, estimated = None, False
                extra = {k.split(",")[0]: float(v) for k, v in values.items() if k.endswith(",none") and "stderr" not in k and isinstance(v, (int, float)) and not k.startswith(f"{task_metric},")}
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


