"""Visual-token accounting of lmms-eval's own wrappers (real classes, tiny stock checkpoints)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_lmms_eval
from PIL import Image


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _requests(docs: list[Image.Image], task: str = "t"):
    from lmms_eval.api.instance import Instance

    def doc_to_visual(doc):
        return [doc["image"]]

    return [
        Instance(
            "generate_until",
            ("What is shown?", {"max_new_tokens": 2, "until": ["\n\n"]}, doc_to_visual, i, task, "test"),
            idx=0,
            metadata={"task": task, "doc_id": i, "repeats": 1},
        )
        for i in range(len(docs))
    ]


# lmms-eval's llava_hf renders string content; llava-hf's own template renders images only from
# structured parts, so the wrapper needs a string template (its chat_template arg; no commas).
STRING_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() + ': ' + m['content'] + ' ' }}{% endfor %}{% if "
    "add_generation_prompt %}ASSISTANT:{% endif %}"
)

WRAPPERS = {  # lmms-eval model name -> (fixture, model_args, expected tower size for a 90x70 image at those args)
    "llava_hf": (
        "llava_legacy",
        {"device_map": "cpu", "device": "cpu", "chat_template": STRING_TEMPLATE},
        (56, 56),
    ),  # crop
    "qwen2_5_vl": ("qwen2_5_vl", {"device_map": "cpu", "device": "cpu"}, None),  # min_pixels=256*28*28 upsamples
    "qwen2_vl": (
        "qwen2_vl",
        {"device_map": "cpu", "device": "cpu", "max_pixels": 28 * 28 * 6},
        (84, 56),
    ),  # both capped to 6 tokens
}


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_wrapper_logs_what_its_processor_fed_the_model(stock_checkpoint, name):
    from lmms_eval.models import get_model

    from biores_plugin import patching
    from biores_plugin.lmms_plugin import accounting

    fixture, args, expected = WRAPPERS[name]
    accounting.install()
    cls = get_model(name, force_simple=True)
    assert patching.is_wrapped(cls, "generate_until", accounting.GROUP)
    try:
        lm = cls(pretrained=str(stock_checkpoint(fixture)), **args)
        docs = [{"image": _image(90, 70, 0)}, {"image": _image(300, 200, 1)}]
        lm.task_dict = {"t": {"test": docs}}
        results = lm.generate_until(_requests(docs))
    finally:
        accounting.uninstall()  # never leave lmms-eval's wrappers patched for the next test
    assert not patching.is_wrapped(cls, "generate_until")
    assert len(results) == 2
    for result in results:
        counts = result.token_counts.to_dict()
        ((w, h),) = counts["visual_tokens_sizes"]
        assert counts["visual_tokens"] > 0
        if expected:
            assert (w, h) == expected
        if name == "qwen2_5_vl":  # 256 merged tokens at least: both images upsampled to one size
            assert counts["visual_tokens"] >= 256 and w * h >= 256 * 28 * 28


def test_qwen2_5_vl_sweep_logs_true_tokens_and_report_names_collapse(tmp_path, stock_checkpoint, synth_small):
    """The issue's 'done when': a sweep through qwen2_5_vl at its default args."""
    import subprocess
    import sys
    from pathlib import Path

    folder = stock_checkpoint("qwen2_5_vl")
    out = tmp_path / "out"
    run_lmms_eval(
        [
            "--model",
            "qwen2_5_vl",
            "--model_args",
            f"pretrained={folder},device_map=cpu,device=cpu",
            "--tasks",
            "biores_synth_*",
            "--limit",
            "2",
        ],
        out,
        env={"BIORES_SYNTH_PATH": str(synth_small)},
    )
    tokens = {}
    for path in out.glob("**/*_samples_biores_synth_*.jsonl"):
        task = path.name.split("_samples_")[1][: -len(".jsonl")]
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        tokens[task] = {row["token_counts"][0]["visual_tokens"] for row in rows}
        for row in rows:
            assert row["token_counts"][0]["visual_tokens_sizes"] == [[448, 448]]  # 224 and 256 px both upsampled
    assert tokens == {f"biores_synth_{r}": {256} for r in ("224", "448", "896", "native")}
    report = subprocess.run(
        [str(Path(sys.executable).parent / "biores"), "report", str(out), "--out", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    assert "upsampled" in report.stderr and "collapse" in report.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "variants 224, 448, 896, native collapse" in text and "| 256 |" in text


def test_report_skips_and_lists_unreadable_files(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    run = tmp_path / "runs" / "m"
    run.mkdir(parents=True)
    good = {
        "results": {"biores_synth_224": {"accuracy,none": 0.5, "accuracy_stderr,none": 0.1}},
        "config": {"model_args": "pretrained=m"},
        "n-samples": {"biores_synth_224": {"effective": 2}},
    }
    (run / "20260101_results.json").write_text(json.dumps(good))
    (run / "20260101_samples_biores_synth_224.jsonl").write_text(
        '{"doc_id": 0, "accuracy": {"score": 1}}\n{"doc_id": 1, "accu'
    )
    (run / "20260102_results.json").write_text(json.dumps(good)[:40])  # truncated
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "biores"), "report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    skipped = [line for line in proc.stderr.splitlines() if "skipped unreadable" in line]
    assert len(skipped) == 2 and "Traceback" not in proc.stderr and "JSONDecodeError" not in proc.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert (
        "## Skipped unreadable files" in text
        and "20260102_results.json" in text
        and "samples_biores_synth_224.jsonl" in text
    )
    assert "| 50.0 |" in text  # the readable results still reported
