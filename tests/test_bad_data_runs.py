"""A bad local data copy inside a real lmms-eval run: one ``biores:`` line and a non-zero exit.

lmms-eval retries a failing data-set load (tenacity), prints the tracebacks and exits 0 unless
``--verbosity DEBUG``; biores' data-set hook stops a biores task's run with one stderr line naming
the task and the cause, at every verbosity. The four faults: an image path leaving the data root
(``..``), a symlink leaving it, a copy without the task's split, a copy whose data file is not
what it claims to be; and biores_llava refusing its checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fixtures_real import build_slake, build_vqa_rad, image_bytes


def _slake_with(root: Path, fault: str) -> dict[str, str]:
    fixture = build_slake(root / "slake")
    outside = root / "secret.jpg"
    outside.write_bytes(image_bytes((32, 32), 5))
    if fault == "traversal":
        test = json.loads((fixture.root / "test.json").read_text(encoding="utf-8"))
        test[0]["img_name"] = "../../secret.jpg"
        (fixture.root / "test.json").write_text(json.dumps(test, ensure_ascii=False), encoding="utf-8")
    else:  # an unpacked image folder whose first image is a symlink out of the copy
        (fixture.root / "imgs.zip").unlink()
        for i, name in enumerate(["xmlab1", "xmlab2", "xmlab3", "xmlab4"]):
            (fixture.root / "imgs" / name).mkdir(parents=True)
            if i:
                (fixture.root / "imgs" / name / "source.jpg").write_bytes(image_bytes((32, 32), i))
        (fixture.root / "imgs" / "xmlab1" / "source.jpg").symlink_to(outside)
    return {"BIORES_SLAKE_PATH": str(fixture.root)}


def _vqa_rad_with(root: Path, fault: str) -> dict[str, str]:
    fixture = build_vqa_rad(root / "vqa_rad")
    test = fixture.root / "data" / "test-00000-of-00001.parquet"
    if fault == "missing_split":
        test.unlink()
    else:  # malformed: the test file is not parquet
        test.write_bytes(b"PAR1 this is not a parquet file\n" * 8)
    return {fixture.env: str(fixture.root)}


CASES = {
    "traversal": (
        "biores_slake_native",
        _slake_with,
        ["biores_slake_native", "'../../secret.jpg'", "leaves the data root"],
    ),
    "symlink": (
        "biores_slake_native",
        _slake_with,
        ["biores_slake_native", "xmlab1/source.jpg", "outside the data root"],
    ),
    "missing_split": ("biores_vqa_rad_224", _vqa_rad_with, ["biores_vqa_rad_224", "BIORES_VQA_RAD_PATH", "'test'"]),
    # biores_llava itself refusing its arguments (before any task is built)
    "checkpoint": (
        "biores_vqa_rad_224",
        lambda root, fault: {},
        ["biores_llava", "nowhere", "not a local checkpoint folder"],
    ),
    "malformed": (
        "biores_vqa_rad_224",
        _vqa_rad_with,
        ["biores_vqa_rad_224", "BIORES_VQA_RAD_PATH", "test-00000-of-00001.parquet"],
    ),
}


def _start(
    task: str, env: dict[str, str], tmp_path: Path, model_args: tuple[str, str], verbosity: str
) -> subprocess.Popen:
    model, args = model_args
    full = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "LMMS_EVAL_DATASETS_CACHE": str(tmp_path / "cache"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        **env,
    }
    cmd = [
        sys.executable,
        "-m",
        "lmms_eval",
        "--model",
        model,
        "--model_args",
        args,
        "--tasks",
        task,
        "--limit",
        "2",
        "--output_path",
        str(tmp_path / "out"),
        "--verbosity",
        verbosity,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full, cwd=tmp_path)


def test_bad_local_copies_end_their_runs_with_one_line(lmms_model_args, tmp_path):
    """The faults, each in its own real CLI run (run side by side: each is mostly start-up)."""
    runs = {}
    for fault, verbosity in [
        ("traversal", "INFO"),
        ("symlink", "DEBUG"),
        ("missing_split", "WARNING"),
        ("malformed", "INFO"),
        ("checkpoint", "INFO"),
    ]:
        task, build, _ = CASES[fault]
        where = tmp_path / fault
        model = (
            lmms_model_args if fault != "checkpoint" else ("biores_llava", f"pretrained={where / 'nowhere'},device=cpu")
        )
        where.mkdir()
        runs[fault] = (where, _start(task, build(where / "data", fault), where, model, verbosity))
    for fault, (where, proc) in runs.items():
        stdout, stderr = proc.communicate(timeout=600)
        text = stdout + stderr
        lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("biores: ")]
        assert proc.returncode == 2, (fault, text[-3000:])
        assert "Traceback" not in text and "RetryError" not in text, (fault, text[-3000:])
        assert len(lines) == 1, (fault, lines)
        assert all(part in lines[0] for part in CASES[fault][2]), (fault, lines[0])
        assert not list((where / "out").glob("**/*_results.json"))
