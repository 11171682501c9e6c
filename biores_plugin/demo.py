"""``biores demo``: the study's three findings, reproduced offline on 2 CPU cores in minutes.

Stages (each cached in ``--out``; an interrupted stage is redone, never half used): synthetic
data, one pretrained tiny vision tower, three tiny LLaVAs (low, native, mixed) trained with
``biores-train``, an lmms-eval sweep of each, and the report with the verdicts. docs/demo.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .demo_runtime import default_threads, stage_bars
from .errors import BioresConfigError
from .io_utils import atomic_write_text

DONE = ".biores-stage.json"
#: Bump when the recipe changes so cached stages are not reused across recipes.
RECIPE = 7


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    generator: str = "striations"
    native: int = 192
    low: int = 64
    n_train: int = 5000
    n_test: int = 500
    steps: int = 800
    batch_size: int = 32
    learning_rate: float = 1.5e-3
    vision_lr: float = 1.5e-3
    fine_weight: float = 1.0
    scheduler: str = "cosine"
    warmup: float = 0.05
    init: str = "torch"
    placement: str = "before"
    encoder_generator: str = "puncta"
    encoder_n: int = 1500
    encoder_steps: int = 400
    encoder_lr: float = 2e-3
    mixed: str = "64:0.7,native:0.3"
    mixed_schedule: str = "balanced"
    mixed_steps: int = 1200  # as many 64 px images as the 64 px model sees, fewer visual tokens than native
    mixed_loss_normalization: str = "token"
    models: tuple[str, ...] = ("low", "native", "mixed")
    eval_resolutions: tuple[str, ...] = ("64", "128", "native")
    eval_batch_size: int = 64
    threads: int = 1  # demo_runtime.default_threads(): 2 threads oversubscribe a shared 2-core machine
    tiny: dict = field(
        default_factory=lambda: {
            "vision_hidden": 64,
            "vision_layers": 2,
            "text_hidden": 64,
            "text_layers": 2,
            "heads": 4,
            "num_channels": 1,
        }
    )

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        """A test-sized run: low vs native only, 800 training images, 100 steps, a 300-step tower."""
        return cls(
            seed=seed,
            native=192,
            n_train=800,
            n_test=100,
            steps=100,
            encoder_n=600,
            encoder_steps=300,
            models=("low", "native"),
            eval_resolutions=("64", "native"),
        )

    def train_spec(self, model: str) -> str:
        return {"low": f"{self.low}:1", "native": "native:1", "mixed": self.mixed}[model]

    def label(self, model: str) -> str:
        return {"low": str(self.low), "native": "native", "mixed": "mixed"}[model]


def _fingerprint(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stage:
    """A cached stage folder: complete when its marker matches the stage's parameters."""

    def __init__(self, folder: Path, params: dict[str, Any]):
        self.folder, self.params = folder, {**params, "recipe": RECIPE}
        self.key = _fingerprint(self.params)  # a new RECIPE invalidates every cached stage

    def done(self) -> bool:
        marker = self.folder / DONE
        if not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text()).get("key") == self.key
        except json.JSONDecodeError:
            return False

    def cached(self, log: Any, label: str) -> bool:
        """True (logged) when the stage is complete; otherwise start it afresh."""
        if self.done():
            log(f"{label}: cached ({self.folder})")
            return True
        self.reset()
        return False

    def reset(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)

    def finish(self, summary: dict[str, Any]) -> None:
        atomic_write_text(
            self.folder / DONE, json.dumps({"key": self.key, "params": self.params, **summary}, indent=2) + "\n"
        )

    def summary(self) -> dict[str, Any]:
        return json.loads((self.folder / DONE).read_text())


LOCK = ".biores-demo.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class OutputLock:
    """``--out``'s lock file, holding the pid of the demo that uses the folder.

    A second demo on the same folder stops with one line naming the holder; a lock left by a
    process that no longer runs is taken over.
    """

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = int(self.path.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    holder = None  # being written, or garbage: judge it by its age
                    if time.time() - self.path.stat().st_mtime < 5:
                        time.sleep(0.2)
                        continue
                if holder is not None and holder != os.getpid() and _alive(holder):
                    raise BioresConfigError(
                        f"{self.path.parent} is in use by another biores demo (pid {holder}, lock {self.path}); wait "
                        f"for it or pass another --out"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            return self
        raise BioresConfigError(f"could not take the lock {self.path}; remove it if no biores demo runs")

    def __exit__(self, *exc: Any) -> None:
        try:
            if int(self.path.read_text().split()[0]) == os.getpid():
                self.path.unlink()
        except (OSError, ValueError, IndexError):  # the lock file is gone or unreadable: nothing of ours to remove
            return


def stage_data(cfg: DemoConfig, out: Path, log: Any) -> Path:
    from .synth.dataset import write_dataset

    stage = Stage(
        out / "data",
        {
            "generator": cfg.generator,
            "size": cfg.native,
            "n_train": cfg.n_train,
            "n_test": cfg.n_test,
            "seed": cfg.seed,
        },
    )
    if stage.cached(log, "[1/5] data"):
        return stage.folder / "synth"
    start = time.time()
    log(f"[1/5] data: generating {cfg.n_train} + {cfg.n_test} {cfg.generator} images at {cfg.native} px")
    write_dataset(
        stage.folder / "synth",
        generators=(cfg.generator,),
        n_train=cfg.n_train,
        n_test=cfg.n_test,
        size=cfg.native,
        seed=cfg.seed,
        progress=True,
        workers=max(1, cfg.threads),
    )
    stage.finish({"seconds": time.time() - start})
    return stage.folder / "synth"


def stage_encoder(cfg: DemoConfig, out: Path, log: Any) -> Path | None:
    """One tiny vision tower, pretrained on another assay and shared by every model (as every
    LLaVA starts from one pretrained CLIP/SigLIP); ``encoder_steps=0`` starts from random."""
    from .synth.dataset import write_dataset
    from .train.pretrain_vision import pretrain

    if cfg.encoder_steps <= 0:
        return None
    params = {
        "generator": cfg.encoder_generator,
        "n": cfg.encoder_n,
        "steps": cfg.encoder_steps,
        "lr": cfg.encoder_lr,
        "size": cfg.native,
        "seed": cfg.seed,
        "tiny": cfg.tiny,
        "batch_size": cfg.batch_size,
    }
    stage = Stage(out / "encoder", params)
    if stage.cached(log, "[2/5] vision encoder"):
        return stage.folder / "tower"
    start = time.time()
    log(
        f"[2/5] vision encoder: pretraining on {cfg.encoder_n} {cfg.encoder_generator} images at {cfg.native} px, "
        f"{cfg.encoder_steps} steps"
    )
    data = write_dataset(
        stage.folder / "data",
        generators=(cfg.encoder_generator,),
        n_train=cfg.encoder_n,
        n_test=max(50, cfg.encoder_n // 10),
        size=cfg.native,
        seed=cfg.seed + 1000,
        progress=False,
        workers=max(1, cfg.threads),
    )
    stats = pretrain(
        [
            "--data_path",
            f"synth:{data}",
            "--output_dir",
            str(stage.folder / "tower"),
            "--vision_tower",
            "siglip",
            "--tiny_config",
            json.dumps({**cfg.tiny, "image_size": cfg.native, "patch_size": 16}),
            "--max_steps",
            str(cfg.encoder_steps),
            "--per_device_train_batch_size",
            str(cfg.batch_size),
            "--learning_rate",
            str(cfg.encoder_lr),
            "--seed",
            str(cfg.seed),
        ]
    )
    shutil.rmtree(data)  # the tower is what later stages use
    stage.finish({"seconds": time.time() - start, "test_accuracy": stats["test_accuracy"]})
    return stage.folder / "tower"


def stage_train(cfg: DemoConfig, out: Path, data: Path, model: str, log: Any, encoder: Path | None = None) -> Path:
    from .train.trainer import train

    spec = cfg.train_spec(model)
    mixed_only = ("mixed", "mixed_schedule", "mixed_loss_normalization", "mixed_steps") if model != "mixed" else ()
    params = {
        k: v for k, v in asdict(cfg).items() if k not in ("models", "eval_resolutions", "eval_batch_size", *mixed_only)
    }
    encoder_key = json.loads((encoder.parent / DONE).read_text())["key"] if encoder is not None else None
    stage = Stage(
        out / "runs" / model, {**params, "model": model, "spec": spec, "data": str(data), "encoder": encoder_key}
    )
    if stage.cached(log, f"[3/5] train {model}"):
        return stage.folder
    steps = cfg.mixed_steps if model == "mixed" and cfg.mixed_steps else cfg.steps
    log(f"[3/5] train {model}: {spec}, {steps} steps x {cfg.batch_size}")
    argv = [
        "--model_name_or_path",
        "tiny",
        "--vision_tower",
        str(encoder) if encoder is not None else "siglip",
        "--image_placement",
        cfg.placement,
        "--init",
        cfg.init,
        "--tiny_config",
        json.dumps({**cfg.tiny, "image_size": cfg.native, "patch_size": 16}),
        "--data_path",
        f"synth:{data}",
        "--image_aspect_ratio",
        "native",
        "--merge_size",
        "2",
        "--mixed_resolution",
        spec,
        "--train_resolution_label",
        cfg.label(model),
        "--mixed_schedule",
        cfg.mixed_schedule if model == "mixed" else "draw",
        "--mixed_loss_normalization",
        cfg.mixed_loss_normalization if model == "mixed" else "token",
        "--answer_loss_weights",
        f"fine={cfg.fine_weight}",
        "--output_dir",
        str(stage.folder),
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        str(cfg.batch_size),
        "--learning_rate",
        str(cfg.learning_rate),
        "--mm_vision_tower_lr",
        str(cfg.vision_lr),
        "--lr_scheduler_type",
        cfg.scheduler,
        "--warmup_steps",
        str(cfg.warmup),
        "--max_grad_norm",
        "1.0",
        "--weight_decay",
        "0.0",
        "--seed",
        str(cfg.seed),
        "--data_seed",
        str(cfg.seed),
        "--save_strategy",
        "no",
        "--logging_steps",
        "20",
        "--report_to",
        "none",
        "--dataloader_num_workers",
        "0",
        "--use_cpu",
        "true",
    ]
    stats = train(argv)
    stage.finish({"stats": stats})
    return stage.folder


def stage_eval(cfg: DemoConfig, out: Path, data: Path, runs: dict[str, Path], log: Any) -> dict[str, Path]:
    """One lmms-eval start for all checkpoints (in-process), one results folder per model."""
    from .task_authoring.taskgen import write_custom_sweep

    tasks_root = out / "tasks"
    write_custom_sweep("synth", cfg.eval_resolutions, tasks_root, name="biores_synth_demo")
    task_names = [f"biores_synth_demo_{r}" for r in cfg.eval_resolutions]
    results: dict[str, Path] = {}
    todo = []
    for model, run in runs.items():
        stage = Stage(
            out / "eval" / model,
            {
                "run": str(run),
                "run_key": json.loads((run / DONE).read_text())["key"],
                "tasks": task_names,
                "data": str(data),
            },
        )
        results[model] = stage.folder
        if stage.done():
            log(f"[4/5] eval {model}: cached ({stage.folder})")
        else:
            todo.append((model, run, stage))
    if not todo:
        return results
    os.environ["BIORES_SYNTH_PATH"] = str(data)
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.loggers import EvaluationTracker
    from lmms_eval.tasks import TaskManager
    from lmms_eval.utils import get_datetime_str

    from .lmms_plugin import plugin

    plugin.install()
    manager = TaskManager("WARNING", include_path=str(tasks_root))
    for model, run, stage in todo:
        stage.reset()
        log(f"[4/5] eval {model}: lmms-eval biores_llava on {', '.join(task_names)}")
        start = time.time()
        tracker = EvaluationTracker(output_path=str(stage.folder))
        outcome = simple_evaluate(
            model="biores_llava",
            model_args=f"pretrained={run},device=cpu,batch_size={cfg.eval_batch_size},max_new_tokens=4",
            tasks=task_names,
            task_manager=manager,
            log_samples=True,
            evaluation_tracker=tracker,
            verbosity="WARNING",
        )
        if outcome is None or not outcome.get("results"):
            raise BioresConfigError(f"lmms-eval produced no results for {model}")
        samples = outcome.pop("samples", {})
        stamp = get_datetime_str()
        tracker.save_results_aggregated(results=outcome, samples=samples, datetime_str=stamp)
        for task in outcome.get("configs", {}):
            tracker.save_results_samples(task_name=task, samples=samples[task])
        stage.finish({"seconds": time.time() - start})
    return results


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


def run_demo(cfg: DemoConfig, out: Path, log: Any = print) -> dict[str, Any]:
    """The five stages in ``out`` (locked while they run); each stage's wall time is printed."""
    with OutputLock(out), stage_bars():
        return _run_demo(cfg, out, log)


def _run_demo(cfg: DemoConfig, out: Path, log: Any) -> dict[str, Any]:
    import torch

    from .report import collect, matrix, matrix_text, write_report

    torch.set_num_threads(cfg.threads)
    start = time.time()
    times: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        begin = time.time()
        value = fn(*args)
        times[name] = time.time() - begin
        log(f"      {name}: {times[name]:.1f} s")
        return value

    data = timed("data", stage_data, cfg, out, log)
    encoder = timed("vision encoder", stage_encoder, cfg, out, log)
    runs = {model: timed(f"train {model}", stage_train, cfg, out, data, model, log, encoder) for model in cfg.models}
    evals = timed("eval", stage_eval, cfg, out, data, runs, log)
    log("[5/5] report")
    begin = time.time()
    labels = {str(evals[m]): cfg.label(m) for m in evals}
    cells = collect(list(evals.values()), labels=labels)
    text, verdicts = findings(cells, cfg, runs)
    notes = (
        f"Synthetic benchmark: {cfg.generator}, native {cfg.native} px, {cfg.n_train} training / {cfg.n_test} test "
        f"images "
        f"(two questions each), seed {cfg.seed}. Tiny LLaVA models (projector and language model from scratch) trained "
        f"for "
        f"{cfg.steps} steps of {cfg.batch_size}, "
        + (
            f"all starting from one vision tower pretrained for {cfg.encoder_steps} steps on {cfg.encoder_n} "
            f"{cfg.encoder_generator} images "
            f"(another assay, native {cfg.native} px).\n\n"
            if cfg.encoder_steps > 0
            else "each from a random vision tower.\n\n"
        )
        + (
            f"The mixed model ({cfg.mixed}) uses the `{cfg.mixed_schedule}` schedule (`biores-train "
            f"--mixed_schedule`).\n\n"
            if "mixed" in runs
            else ""
        )
        + f"## Findings\n\n{text}\n"
    )
    files = write_report(cells, out, title="biores demo: resolution in biomedical MLLMs", notes=notes)
    rows, cols, table = matrix(cells, "synth_demo") if any(c.dataset == "synth_demo" for c in cells) else matrix(cells)
    times["report"] = time.time() - begin
    log("\n" + matrix_text(rows, cols, table) + "\n\n" + text)
    grid = {
        row: {col: (None if v is None else 100 * v) for col, v in zip(cols, values)} for row, values in zip(rows, table)
    }
    summary = {
        "seconds": time.time() - start,
        "stage_seconds": times,
        "verdicts": verdicts,
        "cells": grid,
        "files": {k: str(v) for k, v in files.items()},
        "config": asdict(cfg),
    }
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    log("\nstage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    log(f"wrote {out / 'report.md'}, {out / 'heatmap.png'}, {out / 'curve.png'} in {summary['seconds']:.0f} s")
    return summary


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` (distinct non-negative integers)."""
    try:
        seeds = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise BioresConfigError(f"--seeds takes comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise BioresConfigError(f"--seeds takes distinct non-negative integers such as 0,1,2, got {text!r}")
    return seeds


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


def run_seeds(cfg: DemoConfig, seeds: Sequence[int], out: Path, log: Any = print) -> dict[str, Any]:
    """One demo per seed in ``out/seed<N>``, then the mean +- sd table and the verdicts per seed."""
    with OutputLock(out):
        start = time.time()
        summaries = {}
        for seed in seeds:
            log(f"=== seed {seed} ===")
            summaries[seed] = run_demo(replace(cfg, seed=seed), out / f"seed{seed}", log)
        text, table = seed_table(summaries)
        result = {
            "seeds": list(seeds),
            **table,
            "seconds": time.time() - start,
            "stage_seconds": {seed: s["stage_seconds"] for seed, s in summaries.items()},
        }
        atomic_write_text(out / "seeds_summary.json", json.dumps(result, indent=2, default=str) + "\n")
        atomic_write_text(
            out / "seeds.md", f"# biores demo over seeds {', '.join(map(str, seeds))}\n\n```\n{text}\n```\n"
        )
        log(
            f"\n=== seeds {', '.join(map(str, seeds))}: mean +- sd ===\n{text}\nwrote {out / 'seeds.md'} in "
            f"{result['seconds']:.0f} s"
        )
        return result


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="biores_demo", help="output folder (stages are cached here)")
    parser.add_argument(
        "--quick", action="store_true", help="test-sized run (<= 75 s on a quiet machine): low vs native only"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds (e.g. 0,1,2): one demo each in OUT/seed<N>, then mean +- sd per cell",
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps per model")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default $BIORES_DEMO_THREADS, else 1)"
    )
    parser.add_argument(
        "--encoder-steps",
        type=int,
        default=None,
        help="vision-encoder pretraining steps on the other assay (0: every model starts from a random tower)",
    )


def run(args: argparse.Namespace) -> int:
    cfg = DemoConfig.quick(args.seed) if args.quick else DemoConfig(seed=args.seed)
    cfg = replace(cfg, steps=args.steps or cfg.steps, threads=args.threads or default_threads())
    if args.encoder_steps is not None:
        if args.encoder_steps < 0:
            raise BioresConfigError(f"--encoder-steps must be >= 0, got {args.encoder_steps}")
        cfg = replace(cfg, encoder_steps=args.encoder_steps)
    if args.seeds is not None:
        run_seeds(cfg, parse_seeds(args.seeds), Path(args.out))
    else:
        run_demo(cfg, Path(args.out))
    return 0
