"""lmms-eval integration: task registration with no flags, the synthetic sweep end to end with
the real lmms-eval CLI and the biores_llava model, sweep folders, the upstream patch, reports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_lmms_eval

SHIPPED = [
    "synth",
    "vqa_rad",
    "pathvqa",
    "pmc_vqa",
    "pmc_vqa2",
    "microvqa",
    "ubench",
    "ubench_coarse",
]  # folders; SLAKE is lmms-eval's task wrapped


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory, synth_small, lmms_model_args):
    """ONE lmms-eval start for this module: every synth variant through the glob pattern."""
    model, model_args = lmms_model_args
    out = tmp_path_factory.mktemp("lmms") / "out"
    results = run_lmms_eval(
        ["--model", model, "--model_args", model_args, "--tasks", "biores_synth_*", "--limit", "6"],
        out,
        env={"BIORES_SYNTH_PATH": str(synth_small)},
    )
    return out, results


def test_glob_runs_each_variant_once_with_group(synth_run):
    _, results = synth_run
    variants = {f"biores_synth_{r}" for r in ("224", "448", "896", "native")}
    assert variants <= set(results["results"])
    assert "biores_synth_sweep" in results["groups"]
    for task in variants:
        assert results["n-samples"][task]["effective"] == 6  # not 12: no double run through the group
        assert 0.0 <= results["results"][task]["accuracy,none"] <= 1.0


def test_samples_record_sizes_and_visual_tokens(synth_run, synth_small):
    out, _ = synth_run
    by_task = {}
    for path in out.glob("**/*_samples_biores_synth_*.jsonl"):
        by_task[path.name.split("_samples_")[1][: -len(".jsonl")]] = [
            json.loads(line) for line in path.read_text().splitlines() if line.strip()
        ]
    assert set(by_task) == {"biores_synth_224", "biores_synth_448", "biores_synth_896", "biores_synth_native"}
    for task, samples in by_task.items():
        for sample in samples:
            record = sample["accuracy"]
            assert record["orig_size"] == [256, 256]
            expected = [224, 224] if task.endswith("224") else [256, 256]  # never upsampled
            assert record["eff_size"] == expected
            tokens = sample["token_counts"][0]["visual_tokens"]
            # patch 16 + 2x2 merge: 224 -> 7x7 grid of 32 px cells, 256 -> 8x8
            assert tokens == (49 if task.endswith("224") else 64)


def test_report_from_run(synth_run, tmp_path):
    out, _ = synth_run
    from biores_plugin.report import collect, write_report

    cells = collect([out], labels={str(out): "native"})
    assert {c.resolution for c in cells} == {"224", "448", "896", "native"}
    assert all(c.n == 6 and c.visual_tokens in (49.0, 64.0) and not c.tokens_estimated for c in cells)
    files = write_report(cells, tmp_path / "report")
    text = files["report"].read_text()
    assert "| synth | 224 |" in text and "Train x inference" in text
    # Res-Bench's robustness metrics, from the same cells
    payload = json.loads(files["robustness"].read_text())
    [row] = payload["rows"]
    acc = sorted((c.res_value, c.accuracy) for c in cells)
    assert row["levels"] == ["224", "448", "896", "native"] and row["accuracy"] == [a for _, a in acc]
    assert row["ace"] == pytest.approx(sum(abs(b[1] - a[1]) for a, b in zip(acc, acc[1:])))
    assert "## Robustness to inference resolution" in text and "| synth | 224, 448, 896, native |" in text
    for name in ("curve", "heatmap"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "biores"), "report", str(out), "--out", str(tmp_path / "cli")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cli" / "report.md").is_file() and "synth" in result.stdout


def test_report_errors_are_one_line(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "biores"), "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no lmms-eval" in result.stderr and "Traceback" not in result.stderr


def test_task_registration_in_process_and_no_name_collisions():
    from lmms_eval.tasks import TaskManager

    from biores_plugin.lmms_plugin import plugin as lmms_eval_plugin

    builtin = set(TaskManager("ERROR").all_tasks) if not lmms_eval_plugin.is_installed() else None
    lmms_eval_plugin.install()
    lmms_eval_plugin.install()  # idempotent
    names = set(TaskManager("ERROR").all_tasks)
    assert {"biores_synth_sweep", "biores_synth_native", "biores_synth_224"} <= names
    lmms_eval_plugin.uninstall()
    try:
        plain = set(TaskManager("ERROR").all_tasks)
        assert not any(n.startswith("biores_") for n in plain)
        assert not (plain & {n for n in names if n.startswith("biores_")})  # no collision with built-ins
    finally:
        lmms_eval_plugin.install()
    if builtin is not None:
        assert builtin == plain


def test_lmms_eval_cli_lists_tasks_without_flags():
    proc = subprocess.run(
        [sys.executable, "-m", "lmms_eval", "--tasks", "list"], capture_output=True, text=True, timeout=300
    )
    listing = proc.stdout + proc.stderr
    assert "biores_synth_sweep" in listing and "biores_synth_native" in listing


def test_shipped_sweep_folders_match_the_generator(tmp_path):
    from biores_plugin.task_authoring.taskgen import folder_sweeps, shipped_datasets, write_sweep

    datasets = shipped_datasets()
    assert set(SHIPPED) == set(datasets)
    for dataset, folder in datasets.items():
        copy = tmp_path / dataset
        copy.mkdir()
        for prefix, template in folder_sweeps(folder).items():
            write_sweep(copy, prefix, template=template)
        for generated in copy.glob("*.yaml"):
            assert (folder / generated.name).read_text() == generated.read_text(), generated.name
        assert {p.name for p in folder.glob("biores_*.yaml")} == {p.name for p in copy.glob("*.yaml")}
        assert (folder / "README.md").is_file() and (folder / "utils.py").is_file()


def test_custom_sweep_folder_loads_and_resizes(tmp_path, synth_small, monkeypatch):
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.cli import main
    from biores_plugin.lmms_plugin import plugin as lmms_eval_plugin

    lmms_eval_plugin.install()
    assert (
        main(
            [
                "tasks",
                "--dataset",
                "synth",
                "--resolutions",
                "64,128,native",
                "--out",
                str(tmp_path),
                "--name",
                "biores_synth_small",
            ]
        )
        == 0
    )
    folder = tmp_path / "biores_synth_small"
    assert sorted(p.name for p in folder.glob("*.yaml")) == [
        "biores_synth_small_128.yaml",
        "biores_synth_small_64.yaml",
        "biores_synth_small_native.yaml",
        "biores_synth_small_sweep.yaml",
    ]
    monkeypatch.setenv("BIORES_SYNTH_PATH", str(synth_small))
    manager = TaskManager("ERROR", include_path=str(tmp_path))
    tasks = get_task_dict(["biores_synth_small_64"], manager)
    task = tasks["biores_synth_small_64"]
    doc = task.test_docs()[0]
    assert (doc["biores_eff_width"], doc["biores_eff_height"]) == (64, 64)
    image = task.doc_to_visual(doc)[0]
    assert image.size == (64, 64) and image.mode == "RGB"
    assert "Options:" in task.doc_to_text(doc)
    assert main(["tasks", "--dataset", "nosuch", "--out", str(tmp_path)]) == 2
    assert main(["tasks", "--dataset", "synth", "--resolutions", "abc", "--out", str(tmp_path)]) == 2


def test_missing_synth_data_says_how_to_make_it(tmp_path, monkeypatch):
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.errors import BioresConfigError
    from biores_plugin.lmms_plugin import plugin as lmms_eval_plugin

    lmms_eval_plugin.install()
    monkeypatch.setenv("BIORES_SYNTH_PATH", str(tmp_path / "nothing"))
    with pytest.raises(BioresConfigError, match="biores synth --out"):
        get_task_dict(["biores_synth_native"], TaskManager("ERROR"))


def test_upstream_patch_applies_to_installed_lmms_eval(tmp_path):
    import lmms_eval

    patch_file = Path(__file__).resolve().parents[1] / "patches" / "lmms_eval_task_entrypoints.patch"
    site = Path(lmms_eval.__file__).resolve().parent
    work = tmp_path / "lmms_eval"
    (work / "tasks").mkdir(parents=True)
    shutil.copy(site / "__main__.py", work / "__main__.py")
    shutil.copy(site / "tasks" / "__init__.py", work / "tasks" / "__init__.py")
    # git (which a clone has) applies it as `patch -p1` would; no system `patch` binary needed
    proc = subprocess.run(
        ["git", "apply", "-p1", "--unsafe-paths", str(patch_file)], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    patched = (work / "tasks" / "__init__.py").read_text()
    assert "lmms_eval.tasks" in patched and "_entry_point_task_paths()" in patched
    main = (work / "__main__.py").read_text()
    assert main.index("LMMS_EVAL_PLUGINS") < main.index("task_manager = TaskManager(")
    compile(patched, "tasks/__init__.py", "exec")
    compile(main, "__main__.py", "exec")
