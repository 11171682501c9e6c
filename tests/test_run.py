"""``biores run``: model-side pixel-budget sweeps through the real lmms-eval CLI (issue #20).

One end-to-end sweep of a tiny random Qwen2.5-VL through lmms-eval's own ``qwen2_5_vl`` wrapper
(2 budgets), its resume, an ``--overwrite`` rerun that fails (detected though lmms-eval exits 0),
and ``biores report`` on the folder; the vLLM route checked against the installed lmms-eval vllm
wrapper; the budget's token cost formula against the HF processor."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from probe_task import write_probe_task

BIN = Path(sys.executable).parent
SIZES = [(512, 400), (300, 600), (90, 70), (1000, 200)]


def _biores(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
        "LMMS_EVAL_DATASETS_CACHE": str(cwd / "dcache"),
    }
    return subprocess.run(
        [str(BIN / "biores"), *args], check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def _tokens(folder: Path) -> list[int]:
    rows = [
        json.loads(line)
        for path in folder.glob("**/*_samples_acct_probe.jsonl")
        for line in path.read_text().splitlines()
        if line
    ]
    return [row["token_counts"][0]["visual_tokens"] for row in rows]


def test_budget_sweep_resume_overwrite_failure_and_report(tmp_path, stock_checkpoint):
    ckpt = stock_checkpoint("qwen2_5_vl")
    tasks = write_probe_task(tmp_path / "tasks", SIZES, 4)
    out = tmp_path / "out"
    common = [
        "run",
        "--model",
        "qwen2_5_vl",
        "--model_args",
        f"pretrained={ckpt},device_map=cpu,device=cpu",
        "--tasks",
        "acct_probe",
        "--output_path",
        str(out),
        "--include_path",
        str(tasks),
        "--limit",
        "4",
        "--batch_size",
        "2",
    ]
    proc = _biores(*common, "--max-pixels", "50176,200704", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("running lmms-eval") == 2 and proc.stdout.count(": done in ") == 2
    low, high = _tokens(out / "max_pixels_50176"), _tokens(out / "max_pixels_200704")
    assert len(low) == len(high) == 4
    assert max(low) <= 64 and max(high) <= 256 and max(high) > 64  # the budget reached generate()
    record = json.loads((out / "max_pixels_50176" / "biores_budget.json").read_text())
    assert record["max_pixels"] == 50176 and "max_pixels=50176" in record["model_args"]
    results = json.loads(next((out / "max_pixels_50176").glob("**/*_results.json")).read_text())
    assert "max_pixels=50176" in results["config"]["model_args"]

    before = {p: p.stat().st_mtime_ns for p in out.glob("**/*_results.json")}
    again = _biores(*common, "--max-pixels", "50176,200704", cwd=tmp_path)  # resume: nothing to do
    assert again.returncode == 0 and again.stdout.count("skipped") == 2 and "running" not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.glob("**/*_results.json")} == before
    # --overwrite reruns a finished budget; this rerun fails (a task lmms-eval does not know, on which it
    # exits 0): one line, non-zero exit, and the finished results stay as they were
    bad = [a if a != "acct_probe" else "acct_probe,no_such_task_x" for a in common]
    forced = _biores(*bad, "--max-pixels", "50176", "--overwrite", cwd=tmp_path)
    assert "running lmms-eval" in forced.stdout and forced.returncode != 0
    lines = forced.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("biores run: error: max_pixels=50176 failed"), forced.stderr[-3000:]
    assert "no_such_task_x" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in out.glob("**/*_results.json")} == before

    report = _biores("report", str(out), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "max_pixels=50176" in text and "max_pixels=200704" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "acct_probe" in line]
    assert rows[0].index("max_pixels=50176") and "max_pixels=200704" in rows[1]  # ordered by budget


@pytest.mark.parametrize("model", ["llava_hf", "llava"])
def test_fixed_input_wrappers_refused_in_one_line(tmp_path, model):
    proc = _biores(
        "run",
        "--model",
        model,
        "--model_args",
        "pretrained=x",
        "--tasks",
        "t",
        "--output_path",
        str(tmp_path / "o"),
        "--max-pixels",
        "50176",
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"--model {model} is refused" in proc.stderr and "336x336" in proc.stderr and not (tmp_path / "o").exists()


def test_model_args_per_route_and_conflicts():
    from biores_plugin.errors import BioresConfigError
    from biores_plugin.task_authoring.run import budget_model_args

    assert budget_model_args("qwen2_5_vl", "pretrained=P", 50176, 784) == "pretrained=P,min_pixels=784,max_pixels=50176"
    assert budget_model_args("biores_llava", "pretrained=P,", 1000000, 3136).endswith(
        ",min_pixels=3136,max_pixels=1000000"
    )
    assert (
        budget_model_args("vllm", "model=P", 50176, 784)
        == 'model=P,mm_processor_kwargs={"min_pixels":784,"max_pixels":50176}'
    )
    with pytest.raises(BioresConfigError, match="already sets max_pixels"):
        budget_model_args("qwen2_vl", "pretrained=P,max_pixels=9", 50176, 784)
    with pytest.raises(BioresConfigError, match="already sets mm_processor_kwargs"):
        budget_model_args("vllm", 'model=P,mm_processor_kwargs={"max_pixels":1}', 50176, 784)
    with pytest.raises(BioresConfigError, match="only for"):
        budget_model_args("gpt4v", "", 50176, 784)
    with pytest.raises(BioresConfigError, match="exceeds"):
        budget_model_args("qwen2_vl", "pretrained=P", 50176, 100000)


def test_vllm_model_args_reach_vllm_llm_as_processor_kwargs(monkeypatch):
    """The installed lmms-eval vllm wrapper (vLLM itself is not installed here) parses the model_args
    biores run builds and hands ``vllm.LLM`` ``mm_processor_kwargs`` as a dict with both bounds."""
    import lmms_eval.models.simple.vllm as simple_vllm
    from lmms_eval.models import get_model
    from lmms_eval.utils import simple_parse_args_string

    from biores_plugin.task_authoring.run import budget_model_args

    seen = {}

    class Stop(Exception):
        pass

    def llm(**kwargs):  # stands in for the absent vllm.LLM: records what the wrapper passes it
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(simple_vllm, "LLM", llm)
    args = simple_parse_args_string(
        budget_model_args("vllm", "model=/ckpt/qwen2-vl,max_model_len=4096,max_num_seqs=32", 12845056, 784)
    )
    cls = get_model("vllm")
    with pytest.raises(Stop):
        cls(**args)
    assert seen["model"] == "/ckpt/qwen2-vl" and seen["max_model_len"] == 4096 and seen["max_num_seqs"] == 32
    assert seen["mm_processor_kwargs"] == {"min_pixels": 784, "max_pixels": 12845056}


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_token_formula_matches_the_hf_processor(stock_checkpoint, family):
    """vLLM runs the HF processor: the formula's count equals its image_grid_thw on the same images."""
    from PIL import Image
    from transformers import AutoProcessor

    from biores_plugin.resolution.budget import max_tokens, visual_tokens

    proc = AutoProcessor.from_pretrained(str(stock_checkpoint(family)))
    patch = proc.image_processor.patch_size
    for (w, h), (lo, hi) in itertools.product(
        [(90, 70), (300, 200), (1000, 37), (513, 511), (28, 28), (2000, 1500)],
        [(784, 50176), (784, 200704), (3136, 1003520), (784, 12845056)],
    ):
        out = proc.image_processor(
            images=[Image.new("RGB", (w, h))], size={"shortest_edge": lo, "longest_edge": hi}, return_tensors="pt"
        )
        _, gh, gw = out["image_grid_thw"][0].tolist()
        expected = gh * gw // 4
        assert visual_tokens(w, h, hi, lo, patch_size=patch) == expected, (w, h, lo, hi)
        assert expected <= max_tokens(hi, patch_size=patch)


def _budget_folder(root: Path, budget: int, sizes: list[list[int]]) -> None:
    run = root / f"max_pixels_{budget}" / "m"
    run.mkdir(parents=True)
    (run.parent / "biores_budget.json").write_text(json.dumps({"max_pixels": budget, "min_pixels": 784}))
    results = {
        "results": {"t": {"acc,none": 0.5}},
        "config": {"model_args": f"pretrained=/x/m,max_pixels={budget}"},
        "n-samples": {"t": {"effective": len(sizes)}},
    }
    (run / "20260101_results.json").write_text(json.dumps(results))
    rows = [
        {"doc_id": i, "token_counts": [{"visual_tokens": (w // 28) * (h // 28), "visual_tokens_sizes": [[w, h]]}]}
        for i, (w, h) in enumerate(sizes)
    ]
    (run / "20260101_samples_t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_report_names_budgets_that_reached_the_model_as_the_same_input(tmp_path):
    """Budgets above every image's own size feed the model the same input: the report says so."""
    _budget_folder(tmp_path / "runs", 50176, [[224, 168], [224, 224]])
    _budget_folder(tmp_path / "runs", 1000000, [[504, 392], [504, 504]])
    _budget_folder(tmp_path / "runs", 12845056, [[504, 392], [504, 504]])
    proc = _biores("report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "same input" in line]
    assert warned == [
        "biores report: warning: m / t: budgets max_pixels=1000000, max_pixels=12845056 reached the model "
        "as the same input (288 visual tokens per image on average)"
    ]
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "budgets max_pixels=1000000, max_pixels=12845056 reached the model as the same input" in text
    table = text.split("## Accuracy by inference resolution")[1].split("\n\n")[1]
    levels = [line.split(" | ")[3] for line in table.splitlines() if line.startswith("| m | ")]
    assert levels == ["max_pixels=50176", "max_pixels=1000000", "max_pixels=12845056"]  # ordered by budget
