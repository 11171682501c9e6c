"""bench/gpu_check.sh --cpu-smoke: every part of the GPU check runs (tiny, on CPU) and reports its SUMMARY line.

A lent GPU machine has minutes, not hours: a crash there (a renamed flag, a bench that lost a section) wastes the
loan. This runs the same script, in its CPU mode, so such breakage shows up in CI first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_smoke_runs_every_part(tmp_path):
    log = tmp_path / "gpu_check.log"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_LOG": str(log), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--cpu-smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "!!" not in out, out[-4000:]
    summaries = [line for line in out.splitlines() if line.startswith("SUMMARY")]
    for name in ("gpu-attention", "packed-vision", "packed-qwen", "packed-lm", "vllm budget sweep"):
        assert any(line.startswith(f"SUMMARY {name}") for line in summaries), (name, summaries)
    # the packed training steps feed no padding, and the packed loss equals the padded one
    for name in ("packed-qwen", "packed-lm"):
        line = next(line for line in summaries if line.startswith(f"SUMMARY {name}"))
        assert "pad 0%" in line, line
    qwen = next(line for line in summaries if line.startswith("SUMMARY packed-qwen"))
    gap = float(re.search(r"max loss gap ([0-9.e+-]+)", qwen).group(1))
    assert gap < 1e-5, qwen
    assert summaries[-1].startswith("SUMMARY gpu-check cpu-smoke ok"), summaries[-1]
    assert log.read_text().count("SUMMARY") >= 5
