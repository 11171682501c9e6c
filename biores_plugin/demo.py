"""``biores demo``: the study's three findings, reproduced offline on 2 CPU cores in minutes.

Stages (each cached in ``--out``; an interrupted stage is redone, never half used): synthetic
data, one pretrained tiny vision tower, three tiny LLaVAs (low, native, mixed) trained with
``biores-train``, an lmms-eval sweep of each, and the report with the verdicts. docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .demo_findings import findings, seed_table
from .demo_runtime import default_threads, stage_bars
from .demo_state import DONE, DemoConfig, OutputLock, Stage
from .errors import BioresConfigError
from .io_utils import atomic_write_text


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
        "--sample_cache_mb",
        "3072",  # each image decoded and resized once, not once per epoch (all 5,000 native ones fit)
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
    manager = TaskManager("WARNING", include_path=str(tasks_root), include_defaults=False)
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
        "--quick", action="store_true", help="test-sized run (about 85 s on a quiet 2-core machine): low vs native only"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds (e.g. 0,1,2): one demo each in OUT/seed<N>, then mean +- sd per cell",
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps per model")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default $BIORES_DEMO_THREADS, else the idle cores)"
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
