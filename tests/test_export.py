"""``biores export-task``: contribution-ready lmms-eval folders that import nothing from biores.

The exported folders are loaded by lmms-eval through ``--include_path`` in ONE CLI run on local
copies in the hub's layout (only ``dataset_path`` pointed at them, PMC-VQA's figures through a
hub-cache snapshot of ``images.zip``, as a stock install reads them), beside biores' own tasks of
the same protocol: prompts, generation settings and per-sample scores must agree.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from conftest import run_lmms_eval
from fixtures_hub import hub_snapshot
from fixtures_real import build_pathvqa, build_pmc_vqa, build_ubench, build_vqa_rad

BIN = Path(sys.executable).parent
NAMES = ["vqa_rad", "pathvqa", "pmc_vqa", "ubench"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    hf_home = root / "hf"
    data = {
        "vqa_rad": build_vqa_rad(root / "vqa_rad"),
        "pathvqa": build_pathvqa(root / "pathvqa"),
        "pmc_vqa": build_pmc_vqa(hub_snapshot(hf_home, "xmcmic/PMC-VQA")),
        "ubench": build_ubench(root / "ubench"),
    }
    tasks = root / "tasks"
    from biores_plugin.cli import main

    assert main(["export-task", *NAMES, "--out", str(tasks / "export")]) == 0
    (tasks / "local").mkdir()
    for name in NAMES:  # the exported task itself, only its data pointed at the local copy
        extra = 'dataset_kwargs: {"load_from_disk": true}\n' if name == "pathvqa" else ""
        (tasks / "local" / f"{name}_local.yaml").write_text(
            f'include: "{tasks / "export" / name / f"{name}.yaml"}"\ntask: {name}_local\ndataset_path: '
            f'"{data[name].root}"\n{extra}'
        )
    env = {
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "LMMS_EVAL_DATASETS_CACHE": str(root / "datasets"),
        **{f.env: str(f.root) for f in data.values()},
    }
    return {"root": root, "tasks": tasks, "data": data, "env": env}


def test_exported_folders_are_self_contained(exported):
    for name in NAMES:
        folder = exported["tasks"] / "export" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted([f"{name}.yaml", "README.md", "utils.py"])
        tree = ast.parse((folder / "utils.py").read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in imported if m.startswith("biores")}, (name, imported)
        assert imported <= {
            "difflib",
            "io",
            "re",
            "string",
            "zipfile",
            "collections",
            "functools",
            "typing",
            "PIL",
            "huggingface_hub",
        }
        readme = (folder / "README.md").read_text()
        assert f"--tasks {name}" in readme and "--include_path" in readme and "## Protocol" in readme


def test_export_refuses_what_it_cannot_export(tmp_path, capsys):
    from biores_plugin.cli import main

    for name, why in (("synth", "synthetic"), ("slake", "lmms-eval ships it"), ("nosuch", "exportable")):
        assert main(["export-task", name, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1 and "Traceback" not in err


def _samples(out: Path, task: str) -> list[dict]:
    [path] = list(out.glob(f"**/*_samples_{task}.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _score(value):
    return value["score"] if isinstance(value, dict) else value


def test_exported_tasks_run_in_lmms_eval_as_biores_own(exported, lmms_model_args):
    model, model_args = lmms_model_args
    out = exported["root"] / "cli" / "out"
    out.parent.mkdir()
    names = [f"{n}_local" for n in NAMES] + [f"biores_{n}_native" for n in NAMES]
    args = [
        "--model",
        model,
        "--model_args",
        model_args.replace("batch_size=4", "batch_size=1"),
        "--include_path",
        str(exported["tasks"]),
        "--tasks",
        ",".join(names),
        "--limit",
        "2",
        "--gen_kwargs",
        "max_new_tokens=6,temperature=0,do_sample=False",
    ]  # same draws
    results = run_lmms_eval(args, out, env={**exported["env"], "OMP_NUM_THREADS": "1"})
    for name in NAMES:
        values, configs = results["results"][f"{name}_local"], results["configs"]
        assert 0.0 <= values["accuracy,none"] <= 1.0 and results["n-samples"][f"{name}_local"]["effective"] == 2
        assert not any(k.startswith("biores") for k in values)
        assert configs[f"{name}_local"]["generation_kwargs"] == configs[f"biores_{name}_native"]["generation_kwargs"]
        theirs, ours = _samples(out, f"{name}_local"), _samples(out, f"biores_{name}_native")
        assert len(theirs) == len(ours) == 2
        metrics = [m["metric"] for m in configs[f"{name}_local"]["metric_list"]]
        for a, b in zip(theirs, ours, strict=True):
            assert a["input"] == b["input"] and a["filtered_resps"] == b["filtered_resps"]
            assert {m: _score(a[m]) for m in metrics} == {m: _score(b[m]) for m in metrics}
