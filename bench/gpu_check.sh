#!/usr/bin/env bash
# GPU check (under 10 minutes on one H100: the step budgets add up to 540 s): varlen attention kernels and
# their biores paths as a fraction of each kernel's own throughput, packed vision towers, packed LLaVA and packed
# Qwen2-VL training steps (bf16), and the vLLM pixel-budget sweep where vLLM is installed.
# Usage: bash bench/gpu_check.sh [--cpu-smoke]   (PYTHON=... to pick the interpreter)
# --cpu-smoke runs every part in a tiny CPU mode: a crash test for machines without a GPU (tests/test_gpu_check.py
# runs it in CI). BIORES_WHEELS=DIR installs the wheels in DIR first (--no-deps --no-index): how a lent machine,
# which reaches no package index, gets a transformers inside biores' tested range (see docs/benchmarks.md).
set -u -o pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
LOG="${GPU_CHECK_LOG:-gpu_check.log}"
: > "$LOG"
if [ -n "${BIORES_WHEELS:-}" ] && ls "$BIORES_WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --no-deps --no-index "$BIORES_WHEELS"/*.whl 2>&1 | tee -a "$LOG"
fi
SMOKE=""
[ "${1:-}" = "--cpu-smoke" ] && SMOKE="--cpu-smoke"

if [ -z "$SMOKE" ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "SUMMARY gpu-check did not run: no CUDA device (use --cpu-smoke for the CPU crash test)" | tee -a "$LOG"
  exit 1
fi
"$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
try:
    import flash_attn
    print("flash-attn", flash_attn.__version__)
except Exception as exc:
    print("flash-attn not importable:", type(exc).__name__, "(the torch varlen / SDPA backends are measured)")
EOF

status=0
step() {  # step NAME SECONDS CMD...: a budgeted part; its SUMMARY line is collected
  local name="$1" budget="$2"; shift 2
  echo "== $name (budget ${budget}s)" | tee -a "$LOG"
  timeout "$budget" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "!! $name exited $rc" | tee -a "$LOG"; status=1; }
}

if [ -n "$SMOKE" ]; then
  step "attention kernels" 120 "$PY" bench/gpu_attention.py --cpu-smoke
  step "packed vision" 120 "$PY" bench/packed_vision.py --device cpu --layers 1 --sizes 32x32,64x48 --backward
  step "packed LM and Qwen-VL training" 180 "$PY" bench/train_step.py --cpu-smoke
  step "vLLM budget sweep" 60 "$PY" bench/vllm_budget_sweep.py
else
  step "attention kernels + towers" 150 "$PY" bench/gpu_attention.py --quick
  step "packed vision training (bf16)" 90 "$PY" bench/packed_vision.py --device cuda --dtype bfloat16 --backward --layers 12
  step "packed LM training (bf16)" 120 "$PY" bench/train_step.py --model llava --device cuda --dtype bfloat16 \
    --text_hidden 1024 --text_layers 8 --heads 16 --per_size 2
  step "packed Qwen-VL training (bf16)" 120 "$PY" bench/train_step.py --model qwen --device cuda --dtype bfloat16 \
    --text_hidden 1024 --text_layers 8 --heads 16
  step "vLLM budget sweep" 60 "$PY" bench/vllm_budget_sweep.py
fi
echo "== summaries" | tee -a "$LOG"
grep '^SUMMARY' "$LOG" | grep -v 'gpu-check' || true
echo "SUMMARY gpu-check $([ -n "$SMOKE" ] && echo cpu-smoke || echo cuda) $([ $status -eq 0 ] && echo ok || echo 'with failures') (log: $LOG)"
exit $status
