"""Read lmms-eval output folders into :class:`Cell` s: one (run, data set, resolution) each.

Accuracy and its standard error from ``*_results.json``; sample counts, visual tokens and
effective sizes from the samples log (``*_samples_<task>.jsonl``) when it was written. Two axes:
data-side levels (``biores_<dataset>_<level>`` sweep variants) and model-side budgets (folders
``biores run`` wrote, with ``biores_budget.json``: every task, level ``max_pixels=<N>``).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BioresConfigError
from ..resolution.levels import level_display, level_order

_TASK = re.compile(r"^(biores_[a-z0-9_]+?)_(native|\d+|\d+(?:p\d+)?um)$")
BUDGET_FILE = "biores_budget.json"  # written by ``biores run`` into each budget's folder
_BUDGET_LEVEL = re.compile(r"^max_pixels=(\d+)$")


@dataclass
class Cell:
    """One (run, data set, inference resolution) measurement."""

    run: str
    train: str | None
    dataset: str
    resolution: str  # "224" ... or "native", or a pixel size "0.5 µm/px"
    accuracy: float
    stderr: float | None
    n: int
    visual_tokens: float | None
    tokens_estimated: bool = False
    extra: dict[str, float] = field(default_factory=dict)
    eff_sizes: list[tuple[int, int]] = field(default_factory=list)  # what biores' sweep handed the model
    consumed_sizes: list[tuple[int, int]] = field(default_factory=list)  # what the model's processor fed its tower
    tokens_missing: int = 0  # samples whose visual tokens could not be counted (the log says why)

    @property
    def res_value(self) -> float:
        return level_value(self.resolution)


def level_value(level: str) -> float:
    """Sort key of a level: a model-side budget ``max_pixels=N`` by N, a data-side level as
    :func:`~biores_plugin.resolution.levels.level_order` (µm, px, then native)."""
    budget = _BUDGET_LEVEL.match(str(level))
    return float(budget.group(1)) if budget else level_order(level)


def _budget(results_file: Path) -> dict | None:
    """The ``biores run`` budget of a results file (its folder or the one above holds the record)."""
    for folder in (results_file.parent, results_file.parent.parent):
        record = folder / BUDGET_FILE
        if record.is_file():
            data = json.loads(record.read_text())
            return data if isinstance(data, dict) and isinstance(data.get("max_pixels"), int) else None
    return None


def budget_collapse_warnings(cells: Sequence[Cell]) -> list[str]:
    """One line per (model, data set) whose budgets reached the model as the same input: every
    image the same size at both (e.g. budgets above every image's own size)."""
    out: list[str] = []
    groups: dict[tuple[str, str], dict[tuple, list[Cell]]] = {}
    for c in cells:
        if _BUDGET_LEVEL.match(c.resolution) and c.consumed_sizes and c.visual_tokens is not None:
            key = (round(c.visual_tokens, 1), tuple(map(tuple, c.consumed_sizes)))
            groups.setdefault((c.run, c.dataset), {}).setdefault(key, []).append(c)
    for (run, dataset), by_input in sorted(groups.items()):
        for same in by_input.values():
            if len(same) > 1:
                same = sorted(same, key=lambda c: c.res_value)
                names = ", ".join(c.resolution for c in same)
                out.append(
                    f"{run} / {dataset}: budgets {names} reached the model as the same input "
                    f"({same[0].visual_tokens:.0f} visual tokens per image on average)"
                )
    return out


def missing_token_warnings(cells: Sequence[Cell]) -> list[str]:
    """One line per cell whose samples lack a visual-token count (the wrapper is not watched, or
    the count failed: each sample's ``visual_tokens_missing`` says why)."""
    return [
        f"{c.run} / {c.dataset} / {c.resolution}: {c.tokens_missing} of {c.n} samples have no visual-token count"
        for c in cells
        if c.tokens_missing
    ]


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
        if part.startswith(("pretrained=", "model=")):  # HF wrappers; lmms-eval's vllm
            return part.split("=", 1)[1]
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


def _load_json(path: Path, unreadable: list | None) -> dict | None:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if unreadable is None:
            raise BioresConfigError(f"{path}: unreadable results file ({_reason(exc)})") from None
        unreadable.append((str(path), _reason(exc)))
        return None


def _reason(exc: Exception) -> str:
    return (
        f"invalid JSON at line {exc.lineno}"
        if isinstance(exc, json.JSONDecodeError)
        else str(exc).splitlines()[0][:120]
    )


def _read_lines(path: Path, unreadable: list | None) -> list[dict] | None:
    rows = []
    try:
        with path.open() as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        raise ValueError(f"invalid JSON at line {number} (truncated?)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if unreadable is None:
            raise BioresConfigError(f"{path}: unreadable samples file ({exc})") from None
        unreadable.append((str(path), str(exc).splitlines()[0][:120]))
        return None
    return rows


def _read_samples(rows: list[dict], metric: str, missing: list | None = None):
    scores, tokens, sizes, consumed = [], [], [], []
    for sample in rows:
        if not isinstance(sample, dict):
            continue
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
                consumed.extend(tuple(s) for s in counts.get("visual_tokens_sizes") or [])
            elif isinstance(counts, dict) and counts.get("visual_tokens_missing") and missing is not None:
                missing.append(counts["visual_tokens_missing"])
    return scores, tokens, sizes, consumed


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
    unreadable: list | None = None,
) -> list[Cell]:
    """Every biores sweep measurement in the given lmms-eval output folders.

    With ``unreadable`` (a list), truncated or invalid files are skipped and appended to it as
    ``(path, reason)``; without it they raise a one-line :class:`BioresConfigError`."""
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
            data = _load_json(results_file, unreadable)
            if data is None:
                continue
            config = data.get("config") or {}
            run = labels.get(str(folder.resolve()), None)
            train = run or _train_label(config)
            run_name = run or Path(_model_path(config) or folder).name
            budget = _budget(results_file)
            for task, values in (data.get("results") or {}).items():
                m = _TASK.match(task)
                task_metric = _task_metric(data, task, values, metric) if m or budget else None
                if task_metric is None and budget:  # any task of a budget run: its first metric
                    task_metric = next(
                        (
                            k.split(",")[0]
                            for k, v in values.items()
                            if k.endswith(",none") and "stderr" not in k and isinstance(v, (int, float))
                        ),
                        None,
                    )
                if task_metric is None:
                    continue
                dataset = m.group(1)[len("biores_") :] if m else task
                level = level_display(m.group(2)) if m else "native"
                if budget:  # the model-side axis; a data-side level other than native stays in the name
                    dataset += "" if level == "native" else f" ({level})"
                    level = f"max_pixels={budget['max_pixels']}"
                accuracy = float(values[f"{task_metric},none"])
                stderr = values.get(f"{task_metric}_stderr,none")
                stderr = float(stderr) if isinstance(stderr, (int, float)) else None
                if task_metric != metric and accuracy > 1.0:  # a wrapped task reporting percent
                    accuracy, stderr = accuracy / 100, None if stderr is None else stderr / 100
                n = int((data.get("n-samples") or {}).get(task, {}).get("effective", 0))
                tokens, estimated = None, False
                extra = {
                    k.split(",")[0]: float(v)
                    for k, v in values.items()
                    if k.endswith(",none")
                    and "stderr" not in k
                    and isinstance(v, (int, float))
                    and not k.startswith(f"{task_metric},")
                }
                samples = _samples_file(results_file, task)
                rows = _read_lines(samples, unreadable) if samples is not None else None
                sizes, consumed = [], []
                if rows is not None:
                    scores, token_list, sizes, consumed = _read_samples(rows, metric, missing := [])
                    if scores:
                        n = len(scores)
                        stderr = _binomial_stderr(scores) if stderr is None else stderr
                    if token_list:
                        tokens = sum(token_list) / len(token_list)
                    elif sizes:
                        tokens = sum(estimator.visual_tokens(w, h) for w, h in sizes if w and h) / len(sizes)
                        estimated = True
                cells.append(
                    Cell(
                        run_name,
                        train,
                        dataset,
                        level,
                        accuracy,
                        stderr,
                        n,
                        tokens,
                        estimated,
                        extra,
                        list(sizes),
                        list(consumed),
                        len(missing) if rows is not None else 0,
                    )
                )
    if not cells:
        raise BioresConfigError("the results hold no biores_<dataset>_<resolution> tasks and no biores run budgets")
    return cells
