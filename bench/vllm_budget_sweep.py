"""A vLLM pixel-budget sweep of a tiny checkpoint through ``biores run --model vllm`` (issue #20).

For a lent GPU machine (bench/gpu_check.sh). Needs vLLM and lmms-eval; where either is missing it
prints ``vLLM not installed: skipped`` (or names lmms-eval) and exits 0. Otherwise: builds the tiny
random Qwen2-VL of tests/fixtures_models.py, a 6-image local task, runs ``biores run --model vllm
--max-pixels 50176,200704`` and checks both budgets finished; prints, per budget, the visual tokens
each image costs (the processor formula, biores_plugin.resolution.budget) and vLLM's prompt token
counts where lmms-eval logged them. Ends with a SUMMARY line.

    python bench/vllm_budget_sweep.py [--budgets 50176,200704] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

SIZES = [(512, 400), (300, 600), (90, 70), (1000, 200), (224, 224), (800, 800)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="50176,200704")
    parser.add_argument("--keep", default=None, help="folder to keep the run in (default: a temporary one)")
    args = parser.parse_args(argv)
    for module, name in (("vllm", "vLLM"), ("lmms_eval", "lmms-eval"), ("datasets", "datasets")):
        if importlib.util.find_spec(module) is None:
            print(f"{name} not installed: skipped")
            print(f"SUMMARY vllm budget sweep skipped ({name} not installed)")
            return 0

    import fixtures_models as fm
    from probe_task import write_probe_task

    from biores_plugin.resolution.budget import visual_tokens

    root = Path(args.keep or tempfile.mkdtemp(prefix="vllm_sweep_"))
    root.mkdir(parents=True, exist_ok=True)
    ckpt = fm.build_qwen_vl(root, "qwen2_vl")
    tasks = write_probe_task(root / "tasks", SIZES, len(SIZES))
    out = root / "out"
    cmd = [
        sys.executable,
        "-m",
        "biores_plugin.cli",
        "run",
        "--model",
        "vllm",
        "--model_args",
        f"model={ckpt},max_model_len=4096,max_num_seqs=32,gpu_memory_utilization=0.3",
        "--tasks",
        "acct_probe",
        "--include_path",
        str(tasks),
        "--max-pixels",
        args.budgets,
        "--output_path",
        str(out),
        "--overwrite",
    ]
    print(" ".join(cmd), flush=True)
    proc = subprocess.run(cmd, check=False, text=True, capture_output=True)
    print(proc.stdout + proc.stderr[-3000:])
    if proc.returncode != 0:
        print(f"SUMMARY vllm budget sweep FAILED (biores run exited {proc.returncode})")
        return 1
    parts = []
    for budget in (int(b) for b in args.budgets.split(",")):
        expected = [visual_tokens(w, h, budget) for w, h in SIZES]
        rows = [
            json.loads(line)
            for f in (out / f"max_pixels_{budget}").glob("**/*_samples_acct_probe.jsonl")
            for line in f.read_text().splitlines()
            if line
        ]
        inputs = [((r.get("token_counts") or [None])[0] or {}).get("input_tokens") for r in rows]
        print(f"max_pixels={budget}: formula tokens per image {expected}; vLLM prompt tokens {inputs}")
        parts.append(f"max_pixels={budget}: {len(rows)} samples, <= {max(expected)} visual tokens")
    print("SUMMARY vllm budget sweep ok: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
