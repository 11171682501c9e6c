"""Accounting never changes lmms-eval's batching (issue #20): the real ``qwen2_5_vl`` wrapper at
``--batch_size 4`` on 24 docs calls ``generate()`` 6 times with 4 rows with biores installed, and
every logged sample carries the image tokens of the very row ``generate()`` received for it.

The counting wrapper around ``generate()`` is the test's own (installed in a driver script before
lmms-eval starts); the rows are mapped to docs by the doc id written in each prompt, so a wrong
row -> doc mapping in biores fails (images of different sizes share every batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from probe_task import write_probe_task

N_DOCS = 24
SIZES = [(56, 56), (112, 84), (168, 112), (224, 224), (84, 196), (140, 56)]  # 4, 12, 24, 64, 21, 10 tokens

DRIVER = """
import json, sys
import transformers

calls = []
cls = transformers.Qwen2_5_VLForConditionalGeneration
original = cls.generate


def counting(self, *args, **kwargs):
    ids = kwargs["input_ids"]
    calls.append({"ids": ids.tolist(), "image_tokens": (ids == self.config.image_token_id).sum(dim=1).tolist()})
    return original(self, *args, **kwargs)


cls.generate = counting
out_file, sys.argv = sys.argv[1], ["lmms_eval", *sys.argv[2:]]
from lmms_eval.__main__ import cli_evaluate

try:
    cli_evaluate()
finally:
    with open(out_file, "w") as handle:
        json.dump(calls, handle)
"""


def test_batch_4_stays_6_calls_of_4_and_each_sample_gets_its_row(tmp_path, stock_checkpoint):
    from transformers import AutoTokenizer

    ckpt = stock_checkpoint("qwen2_5_vl")
    tasks = tmp_path / "tasks"
    write_probe_task(tasks, SIZES, N_DOCS)
    (tmp_path / "driver.py").write_text(DRIVER)
    out, calls_file = tmp_path / "out", tmp_path / "calls.json"
    args = [
        "--model",
        "qwen2_5_vl",
        "--model_args",
        f"pretrained={ckpt},device_map=cpu,device=cpu,min_pixels=3136,max_pixels=200704",
        "--tasks",
        "acct_probe",
        "--include_path",
        str(tasks),
        "--batch_size",
        "4",
        "--output_path",
        str(out),
        "--log_samples",
        "--verbosity",
        "DEBUG",
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
        "LMMS_EVAL_DATASETS_CACHE": str(tmp_path / "dcache"),
    }
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(calls_file), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    calls = json.loads(calls_file.read_text())
    assert [len(c["ids"]) for c in calls] == [4] * 6

    tok = AutoTokenizer.from_pretrained(str(ckpt))
    received = {}  # doc id -> image tokens in the generate() row that carried its prompt
    for call in calls:
        batch_tokens = set()
        for row, tokens in zip(call["ids"], call["image_tokens"]):
            text = tok.decode(row)
            doc = int(text.split("Doc ")[1].split(":")[0])
            received[doc] = tokens
            batch_tokens.add(tokens)
        assert len(batch_tokens) > 1  # images of different sizes in one batch: a wrong mapping shows
    assert sorted(received) == list(range(N_DOCS))

    samples = list(out.glob("**/*_samples_acct_probe.jsonl"))
    rows = [json.loads(line) for line in samples[0].read_text().splitlines() if line.strip()]
    assert len(rows) == N_DOCS
    for row in rows:
        counts = row["token_counts"][0]
        assert counts["visual_tokens"] == received[row["doc_id"]], row["doc_id"]
        ((w, h),) = counts["visual_tokens_sizes"]
        assert (w // 28) * (h // 28) == counts["visual_tokens"]  # the tower's grid, merged 2x2


def test_uncountable_row_says_why_and_report_counts_it(tmp_path):
    """A model config without an image token id: no silent count; the report names how many lack one."""
    import torch
    from transformers import PretrainedConfig

    from biores_plugin.eval.accounting import VisualTokenCounts, generate_rows

    class NoImageToken(torch.nn.Module):
        config = PretrainedConfig()

    reason = generate_rows(NoImageToken(), {"input_ids": torch.ones(2, 5, dtype=torch.long)})
    assert isinstance(reason, str) and "no image token id" in reason
    assert VisualTokenCounts(visual_tokens_missing=reason).to_dict() == {"visual_tokens_missing": reason}

    run = tmp_path / "runs" / "max_pixels_50176"
    (run / "m").mkdir(parents=True)
    (run / "biores_budget.json").write_text(json.dumps({"max_pixels": 50176, "min_pixels": 784}))
    results = {
        "results": {"acct_probe": {"acc,none": 0.5, "acc_stderr,none": 0.5}},
        "config": {"model_args": "pretrained=/x/m"},
        "n-samples": {"acct_probe": {"effective": 2}},
    }
    (run / "m" / "20260101_results.json").write_text(json.dumps(results))
    samples = [
        {"doc_id": 0, "acc": 1.0, "token_counts": [{"visual_tokens": 54, "visual_tokens_sizes": [[252, 168]]}]},
        {"doc_id": 1, "acc": 0.0, "token_counts": [{"visual_tokens_missing": reason}]},
    ]
    (run / "m" / "20260101_samples_acct_probe.jsonl").write_text("\n".join(json.dumps(s) for s in samples) + "\n")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "biores"), "report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 of 2 samples have no visual-token count" in proc.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Samples without a visual-token count" in text and "| max_pixels=50176 |" in text and "| 54 |" in text
