"""A corrupt image inside a real lmms-eval run: one line and exit 2, or skipped and recorded.

lmms-eval (``LOAD_TRUNCATED_IMAGES = True`` on import) prints a traceback and exits 0 for a
failed run; biores tasks stop it with one stderr line naming task, doc and source, and with
``BIORES_SKIP_BAD_IMAGES`` the run finishes, scores nothing from the broken doc and counts it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_lmms_eval
from fixtures_real import build_vqa_rad

TASK = "biores_vqa_rad_224"


@pytest.fixture(scope="module")
def bad_copy(tmp_path_factory) -> dict[str, str]:
    """A local VQA-RAD copy whose second test image is truncated, and a private datasets cache."""
    root = tmp_path_factory.mktemp("bad_vqa_rad")
    fixture = build_vqa_rad(root / "vqa_rad", truncate=1)
    return {fixture.env: str(fixture.root), "LMMS_EVAL_DATASETS_CACHE": str(root / "cache")}


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "2", **env}
    return subprocess.run(
        [sys.executable, "-m", "lmms_eval", *args], capture_output=True, text=True, env=full, cwd=cwd, timeout=600
    )


@pytest.mark.parametrize("verbosity", ["INFO", "DEBUG"])
def test_corrupt_image_stops_the_run_with_one_line(bad_copy, lmms_model_args, tmp_path, verbosity):
    model, model_args = lmms_model_args
    out = tmp_path / "out"
    proc = _cli(
        [
            "--model",
            model,
            "--model_args",
            model_args,
            "--tasks",
            TASK,
            "--limit",
            "3",
            "--gen_kwargs",
            "max_new_tokens=4",
            "--output_path",
            str(out),
            "--log_samples",
            "--verbosity",
            verbosity,
        ],
        bad_copy,
        tmp_path,
    )
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.startswith("biores: ")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert (
        len(lines) == 1
        and f"task {TASK}, doc 1" in lines[0]
        and "column 'image'" in lines[0]
        and "truncated" in lines[0]
    ), lines
    assert not list(out.glob("**/*_results.json"))  # nothing scored


def test_corrupt_image_is_skipped_and_counted(bad_copy, lmms_model_args, tmp_path):
    model, model_args = lmms_model_args
    out = tmp_path / "out"
    results = run_lmms_eval(
        [
            "--model",
            model,
            "--model_args",
            model_args,
            "--tasks",
            TASK,
            "--limit",
            "3",
            "--gen_kwargs",
            "max_new_tokens=4",
        ],
        out,
        env={**bad_copy, "BIORES_SKIP_BAD_IMAGES": TASK},
    )
    assert results["results"][TASK]["biores_skipped_images,none"] == 1.0
    [samples_file] = out.glob(f"**/*_samples_{TASK}.jsonl")
    samples = {s["doc_id"]: s for s in map(json.loads, samples_file.read_text().splitlines())}
    assert set(samples) == {0, 1, 2}
    assert (
        "accuracy" not in samples[1] and samples[1]["biores_skipped_images"]["skipped"] == 1.0
    )  # no score from a broken image
    assert "truncated" in samples[1]["biores_skipped_images"]["reason"]
    assert all("accuracy" in samples[i] for i in (0, 2))

    from biores_plugin.cli import main as biores_main

    assert biores_main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    robustness = json.loads((tmp_path / "report" / "robustness.json").read_text())
    assert robustness["skipped_image_ids"] == {TASK: [1]}
