"""biores demo --quick: the whole pipeline (synth -> biores-train -> lmms-eval -> report), cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _demo(out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        # one thread: the thresholds below were measured with it, and the result does not depend on the load
        [str(BIN / "biores"), "demo", "--quick", "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    first = _demo(out)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    return out, first


def test_quick_demo_writes_matrix_report_and_plots(quick_demo):
    out, first = quick_demo
    summary = json.loads((out / "demo_summary.json").read_text())
    report = (out / "report.md").read_text()
    assert "## Findings" in report and "Train x inference" in report
    for name in ("heatmap.png", "curve.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the full train x inference matrix was measured through lmms-eval result files
    from biores_plugin.report import collect, matrix

    cells = collect(
        [out / "eval" / "low", out / "eval" / "native"],
        labels={str(out / "eval" / "low"): "64", str(out / "eval" / "native"): "native"},
    )
    rows, cols, table = matrix(cells)
    assert rows == ["64", "native"] and cols == ["64", "native"]
    assert all(v is not None and 0.0 <= v <= 1.0 for row in table for v in row)
    assert {"finding1", "finding1_gap", "finding2", "finding2_drop"} <= set(summary["verdicts"])
    gap = summary["verdicts"]["finding1_gap"]
    assert abs(gap - 100 * (table[1][1] - table[0][0])) < 1e-6  # the report states the measured numbers
    # finding 1 on the fixed seed: native-trained at native beats 64-trained at 64 by >= 15 points,
    # and the native model reads the image (well above always giving the most common answer)
    assert summary["verdicts"]["finding1"] is True and gap >= 15, report
    assert 100 * table[1][1] >= summary["verdicts"]["answer_prior"] + 15, report
    encoder = json.loads((out / "encoder" / ".biores-stage.json").read_text())
    # The shared tower learned the other assay's fine yes/no attribute (chance 0.5, 60 test images).
    # Measured spread of this number (quick recipe, 1 thread, 6 Dec 2026): seeds 0 / 1 / 2 gave 0.883 / 0.700 /
    # 0.783 (sd 0.09); seed 0 on another machine of this kind gave 0.800; after equal-size images were batched in the
    # tower (same math, other rounding) 0.867 / 0.683 / 0.650. 0.62 sits below every seed measured and 2 binomial sd
    # (0.065) above chance: a tower that learned nothing fails it. (Finding 1's gap on seed 0: 28.5, then 20.5.)
    assert encoder["test_accuracy"]["fine"] >= 0.62
    assert "train \\ infer" in first.stdout and "Native-trained" in first.stdout
    # visual-token cost: the low model trained on 4 tokens per image, the native one on 36
    stats = {m: json.loads((out / "runs" / m / "biores_train_stats.json").read_text()) for m in ("low", "native")}
    assert stats["low"]["visual_tokens_seen"] * 8 < stats["native"]["visual_tokens_seen"]


def test_rerun_is_cached_and_interrupted_stage_is_redone(quick_demo):
    out, _ = quick_demo
    model_file = out / "runs" / "low" / "model.safetensors"
    before = model_file.stat().st_mtime_ns
    second = _demo(out)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (
        "train low: cached" in second.stdout
        and "data: cached" in second.stdout
        and "vision encoder: cached" in second.stdout
    )
    assert model_file.stat().st_mtime_ns == before
    # a stage interrupted half way (no completion marker, partial files) is redone, not used
    (out / "runs" / "low" / ".biores-stage.json").unlink()
    model_file.write_bytes(b"partial")
    third = _demo(out)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "train low: 64:1" in third.stdout and "train native: cached" in third.stdout
    assert model_file.read_bytes()[:8] != b"partial"


@pytest.mark.parametrize(
    "mixed_at_64, holds, wording",
    [(0.60, True, "at or above the best other model"), (0.45, False, "at most 5.0 points below")],
)
def test_findings_are_judged_from_the_matrix(tmp_path, mixed_at_64, holds, wording):
    """Finding 3: within 3 points of the best other model everywhere and a cost in between."""
    from types import SimpleNamespace

    from biores_plugin.demo import DONE, DemoConfig, findings

    runs = {}
    for model, tokens in (("low", 100), ("native", 900), ("mixed", 500)):
        (tmp_path / "runs" / model).mkdir(parents=True)
        (tmp_path / "runs" / model / DONE).write_text(json.dumps({"stats": {"visual_tokens_seen": tokens}}))
        runs[model] = tmp_path / "runs" / model
    acc = {
        ("64", "64"): 0.5,
        ("64", "128"): 0.2,
        ("64", "native"): 0.2,
        ("native", "64"): 0.4,
        ("native", "128"): 0.4,
        ("native", "native"): 0.8,
        ("mixed", "64"): mixed_at_64,
        ("mixed", "128"): 0.6,
        ("mixed", "native"): 0.9,
    }
    cells = [SimpleNamespace(train=t, resolution=r, accuracy=v) for (t, r), v in acc.items()]
    text, verdicts = findings(cells, DemoConfig(), runs)
    assert verdicts["finding1"] and abs(verdicts["finding1_gap"] - 30) < 1e-9
    assert verdicts["finding2"] and abs(verdicts["finding2_drop"] - 30) < 1e-9
    assert verdicts["finding3"] is holds and wording in text


def test_stage_cache_key_covers_params_and_recipe(tmp_path, monkeypatch):
    from biores_plugin import demo_state as demo

    stage = demo.Stage(tmp_path / "s", {"a": 1})
    stage.reset()
    assert not stage.done()  # no marker yet: an interrupted stage is never used
    stage.finish({"seconds": 1.0})
    assert demo.Stage(tmp_path / "s", {"a": 1}).done()
    assert not demo.Stage(tmp_path / "s", {"a": 2}).done()
    monkeypatch.setattr(demo, "RECIPE", demo.RECIPE + 1)  # a new recipe invalidates cached stages
    assert not demo.Stage(tmp_path / "s", {"a": 1}).done()


def test_demo_rejects_negative_encoder_steps_in_one_line(tmp_path, capsys):
    from biores_plugin.cli import main

    assert main(["demo", "--encoder-steps", "-1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "biores demo: error: --encoder-steps must be >= 0, got -1"
    assert not (tmp_path / "out").exists()  # nothing generated


def test_second_demo_on_a_locked_folder_stops_in_one_line_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    from biores_plugin.cli import main
    from biores_plugin.demo_state import LOCK, OutputLock

    out = tmp_path / "out"
    (out / "runs" / "low").mkdir(parents=True)
    (out / "runs" / "low" / "model.safetensors").write_bytes(b"kept")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(f"{holder.pid}\n")
        assert main(["demo", "--quick", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("biores demo: error: ") and f"pid {holder.pid}" in err and "\n" not in err
        assert (out / "runs" / "low" / "model.safetensors").read_bytes() == b"kept"  # nothing deleted
        assert main(["demo", "--seeds", "0,1", "--out", str(out)]) == 2  # the seed runner takes the same lock
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and the next demo takes it over (and releases it)
    with OutputLock(out) as lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())
    assert not (out / LOCK).exists()


@pytest.mark.parametrize("text", ["0,x", "1,1", "-1", ""])
def test_bad_seeds_are_one_line_errors(tmp_path, capsys, text):
    from biores_plugin.cli import main

    assert main(["demo", "--seeds", text, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("biores demo: error: --seeds takes") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_seed_table_reports_mean_sd_per_cell_and_verdicts_per_seed():
    from biores_plugin.demo import seed_table

    def summary(a, holds3):
        return {
            "cells": {"64": {"64": a, "native": 20.0}, "native": {"64": 40.0, "native": 98.0}},
            "verdicts": {
                "finding1": True,
                "finding1_gap": 98.0 - a,
                "finding2": True,
                "finding2_drop": a - 20.0,
                "finding3": holds3,
                "finding3_worst_gap": 2.0 if holds3 else 4.5,
            },
        }

    text, table = seed_table({0: summary(70.0, True), 1: summary(74.0, False), 2: summary(72.0, True)})
    assert table["cells"]["64"]["64"] == pytest.approx([72.0, 2.0])
    assert table["cells"]["native"]["native"] == pytest.approx([98.0, 0.0])
    assert (
        table["verdicts"][1] == {"finding1": True, "finding2": True, "finding3": False} and table["all_hold"] is False
    )
    assert (
        "72.0 +-  2.0" in text
        and "seed 1: finding 1 HOLDS (+24.0); finding 2 HOLDS (-54.0); finding 3 does not hold (gap 4.5)" in text
    )
