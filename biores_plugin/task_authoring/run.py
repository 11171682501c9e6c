"""``biores run``: a model-side pixel-budget sweep through lmms-eval, one run per budget.

``biores run --model qwen2_5_vl --model_args pretrained=P --tasks T --max-pixels 50176,1003520
--output_path DIR [lmms-eval flags]`` runs ``python -m lmms_eval`` once per budget into
``DIR/max_pixels_<N>/`` (written as ``.partial`` and renamed when the run succeeded), with the
budget in the model's own args (``max_pixels=``/``min_pixels=``; vLLM: ``mm_processor_kwargs``)
and in ``biores_budget.json``. A finished budget is skipped unless ``--overwrite``. lmms-eval exits
0 on many failures, so a budget counts as done only with a results file naming every task and no
error in its log. docs/run.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import BioresConfigError, BioresError
from ..io_utils import atomic_write_text

#: lmms-eval model name -> how the budget reaches the model ("args": max_pixels=/min_pixels= model args).
BUDGET_ROUTES = {
    "qwen2_vl": "args",
    "qwen2_5_vl": "args",
    "qwen3_vl": "args",
    "biores_llava": "args",
    "vllm": "mm_processor_kwargs",
}
#: Wrappers refused, with the reason a budget cannot reach their model.
FIXED_INPUT = {
    "llava_hf": "llava_hf runs LLaVA checkpoints at their processor's fixed input size (LLaVA-1.5: every image "
    "resized and cropped to 336x336), so a pixel budget cannot change what the model sees; "
    "use `biores sweep` (data-side levels) or biores_llava",
    "llava": "llava runs LLaVA-1.5 at its fixed 336x336 input, so a pixel budget cannot change what the model sees; "
    "use `biores sweep` (data-side levels) or biores_llava",
}
BUDGET_FILE = "biores_budget.json"
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception)|biores[\w ]*: error|.*\bERROR\b.*\|).*", re.MULTILINE)


class BioresRunError(BioresError):
    """A budget's lmms-eval run failed (one line: the budget and lmms-eval's own error)."""


def parse_budgets(text: str) -> list[int]:
    try:
        budgets = [int(float(v)) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise BioresConfigError(f"--max-pixels must be comma-separated pixel counts, got {text!r}") from None
    if not budgets or any(b < 784 for b in budgets):
        raise BioresConfigError(f"--max-pixels needs budgets of at least 784 pixels (one 28x28 cell), got {text!r}")
    if len(set(budgets)) != len(budgets):
        raise BioresConfigError(f"--max-pixels lists a budget twice: {text!r}")
    return budgets


def _arg_keys(model_args: str) -> set[str]:
    from lmms_eval.utils import simple_parse_args_string

    return set(simple_parse_args_string(model_args))


def budget_model_args(model: str, model_args: str, max_pixels: int, min_pixels: int) -> str:
    """The ``--model_args`` of one budget's run, in the wrapper's own terms."""
    if model in FIXED_INPUT:
        raise BioresConfigError(f"--model {model} is refused: {FIXED_INPUT[model]}")
    route = BUDGET_ROUTES.get(model)
    if route is None:
        raise BioresConfigError(
            f"--model {model}: biores run knows how to set a pixel budget only for {', '.join(BUDGET_ROUTES)}"
        )
    if min_pixels > max_pixels:
        raise BioresConfigError(f"--min-pixels {min_pixels} exceeds the budget max_pixels={max_pixels}")
    keys = _arg_keys(model_args)
    taken = sorted(keys & ({"min_pixels", "max_pixels"} if route == "args" else {"mm_processor_kwargs"}))
    if taken:
        raise BioresConfigError(
            f"--model_args already sets {', '.join(taken)}: "
            "biores run sets the budget itself (--max-pixels/--min-pixels)"
        )
    base = model_args.strip().strip(",")
    if route == "args":
        extra = f"min_pixels={min_pixels},max_pixels={max_pixels}"
    else:  # lmms-eval's vllm wrapper json-loads a {...} value and passes it to vllm.LLM(mm_processor_kwargs=...)
        extra = "mm_processor_kwargs=" + json.dumps(
            {"min_pixels": min_pixels, "max_pixels": max_pixels}, separators=(",", ":")
        )
    return f"{base},{extra}" if base else extra


def results_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("**/*_results.json")) if folder.is_dir() else []


def check_run(folder: Path, tasks: Sequence[str], log: str, returncode: int) -> None:
    """Raise :class:`BioresRunError` (one line) unless lmms-eval really finished every task."""
    errors = [line.strip() for line in _ERROR_LINE.findall(log) if "Traceback" not in line]
    last = errors[-1][:300] if errors else None
    files = results_files(folder)
    if returncode != 0:
        raise BioresRunError(f"lmms-eval exited {returncode}: {last or 'no error line in its output'}")
    if not files:
        raise BioresRunError(f"lmms-eval wrote no results file: {last or 'no error line in its output'}")
    data = json.loads(files[-1].read_text())
    done = set(data.get("results") or {}) | set(data.get("groups") or {})
    missing = [t for t in tasks if "*" not in t and t not in done]
    if missing:
        raise BioresRunError(
            f"lmms-eval's results lack task(s) {', '.join(missing)}: {last or 'no error line in its output'}"
        )


def run_budget(args: argparse.Namespace, extra: list[str], budget: int, final: Path) -> float:
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model_args = budget_model_args(args.model, args.model_args, budget, args.min_pixels)
    flags = list(extra)
    if "--log_samples" not in flags:
        flags.append("--log_samples")  # the samples log carries the visual tokens each image cost
    if args.protocol:
        from ..task_library.med_eval import protocol_flags

        model_args, flags = protocol_flags(args.protocol, args.model, model_args, flags)
    cmd = [
        sys.executable,
        "-m",
        "lmms_eval",
        "--model",
        args.model,
        "--model_args",
        model_args,
        "--tasks",
        args.tasks,
        "--output_path",
        str(partial),
        *flags,
    ]
    record = {
        "model": args.model,
        "max_pixels": budget,
        "min_pixels": args.min_pixels,
        "model_args": model_args,
        "tasks": args.tasks,
        "protocol": args.protocol,
        "command": cmd,
    }
    atomic_write_text(partial / BUDGET_FILE, json.dumps(record, indent=2) + "\n")
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    )
    log = proc.stdout + proc.stderr
    atomic_write_text(partial / "lmms_eval.log", log)
    check_run(partial, [t.strip() for t in args.tasks.split(",") if t.strip()], log, proc.returncode)
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- CLI

#: ``biores run`` passes flags it does not know to lmms-eval (cli.py reads this).
PASSTHROUGH = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=f"lmms-eval model name: {', '.join(BUDGET_ROUTES)}")
    parser.add_argument("--model_args", default="", help="lmms-eval --model_args (pretrained=P,...; vllm: model=P,...)")
    parser.add_argument("--tasks", required=True, help="lmms-eval --tasks")
    from ..resolution import add_resolution_arguments

    add_resolution_arguments(
        parser,
        ("max_pixels", "min_pixels"),
        dashes=True,
        min_pixels=28 * 28,
        options={
            "max_pixels": {
                "required": True,
                "type": parse_budgets,
                "help": "comma-separated pixel budgets, e.g. 50176,1000000,12845056 (the study's)",
            },
            "min_pixels": {
                "help": "the processor's min_pixels at every budget (default 784, the study's: no upsampling)"
            },
        },
    )
    parser.add_argument(
        "--output_path", required=True, help="folder; each budget runs into <output_path>/max_pixels_<N>/"
    )
    parser.add_argument("--overwrite", action="store_true", help="rerun budgets whose results exist")
    parser.add_argument(
        "--protocol",
        choices=["med_eval"],
        default=None,
        help="the study's evaluation protocol (cliangyu/med_eval): system prompt, sampling; docs/run.md",
    )


def run(args: argparse.Namespace) -> int:
    extra = list(getattr(args, "passthrough", []) or [])
    for flag in ("--model", "--model_args", "--tasks", "--output_path"):
        if flag in extra:
            raise BioresConfigError(f"{flag} given twice")
    for budget in args.max_pixels:  # refuse a bad model, flag or budget before the first run
        budget_model_args(args.model, args.model_args, budget, args.min_pixels)
    out = Path(args.output_path)
    total = len(args.max_pixels)
    for i, budget in enumerate(args.max_pixels, 1):
        final = out / f"max_pixels_{budget}"
        head = f"biores run: [{i}/{total}] max_pixels={budget}"
        if results_files(final) and (final / BUDGET_FILE).is_file() and not args.overwrite:
            print(f"{head}: results exist in {final}, skipped (--overwrite reruns)", flush=True)
            continue
        print(f"{head}: running lmms-eval ...", flush=True)
        try:
            seconds = run_budget(args, extra, budget, final)
        except BioresRunError as exc:
            raise BioresRunError(f"max_pixels={budget} failed ({final}.partial/lmms_eval.log): {exc}") from None
        print(f"{head}: done in {seconds:.0f} s -> {final}", flush=True)
    return 0
