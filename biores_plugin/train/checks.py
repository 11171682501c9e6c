"""Checks ``biores-train`` runs before any weight is allocated: what a model folder is, whether
the flags make sense, and whether the model fits in memory (an estimate from a meta-device build).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Optional

from ..errors import BioresConfigError


def available_memory() -> int:
    """Bytes the kernel reports available (``MemAvailable``); 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:  # no /proc (not Linux): unknown, and the caller's check is skipped
        return 0
    return 0


def meta_model(model_cls: Any, config: Any) -> Any:
    """``model_cls(config)`` on the meta device: shapes only, no memory."""
    import torch

    with torch.device("meta"):
        return model_cls(config)


def _trainable(name: str, model_args: Any, training_args: Any) -> bool:
    projector = "multi_modal_projector" in name or ".merger." in f".{name}"
    if getattr(model_args, "tune_mm_mlp_adapter", False) or getattr(training_args, "lora_enable", False):
        return projector
    if getattr(model_args, "freeze_vision_tower", False):
        return projector or not ("vision_tower" in name or ".visual." in f".{name}")
    return True


def check_memory(model: Any, what: str, model_args: Any = None, training_args: Any = None) -> int:
    """Refuse a run whose training state does not fit: 4 bytes per fp32 weight plus 12 per trained
    one (gradient, two AdamW moments), against the available memory (per local process) or the GPU's.
    Sharded runs (DeepSpeed, FSDP) are not estimated."""
    import os

    import torch

    if training_args is not None and (training_args.deepspeed or training_args.fsdp):
        return 0
    total = trained = 0
    for name, param in model.named_parameters():
        total += param.numel()
        trained += param.numel() if _trainable(name, model_args, training_args) else 0
    if getattr(training_args, "lora_enable", False):
        trained += total // 50  # adapters: a small fraction of the weights they adapt
    from .precision import bytes_per_weight

    # --torch_dtype sizes the weights, gradients and AdamW moments
    size = bytes_per_weight(model_args, getattr(model, "config", None))
    need = size * total + 3 * size * trained
    if torch.cuda.is_available():
        budget, where = torch.cuda.mem_get_info()[1], "GPU memory"
    else:
        budget = available_memory() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        where = "available memory" + (" per process" if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1 else "")
    if budget and need > budget:
        raise BioresConfigError(
            f"{what} has {total / 1e6:.1f}M parameters ({trained / 1e6:.1f}M trained): training needs about "
            f"{need / 2**30:.1f} GiB "
            f"({size} bytes per weight + {3 * size} per trained one) "
            f"but the machine has {budget / 2**30:.1f} GiB {where}"
        )
    return need


def check_tiny_config(text: Optional[str]) -> dict[str, Any]:
    """``--tiny_config``: a JSON object of known ``tiny_llava_config`` keys with positive ints."""
    from ..tiny import tiny_llava_config

    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BioresConfigError(f"--tiny_config is not valid JSON: {exc.msg}") from None
    if not isinstance(values, dict):
        raise BioresConfigError(
            f"--tiny_config must be a JSON object like '{{\"text_hidden\": 64}}', got {type(values).__name__}"
        )
    known = [n for n, p in inspect.signature(tiny_llava_config).parameters.items() if p.kind is p.KEYWORD_ONLY]
    fixed = {"tower", "image_token_id", "pad_token_id", "bos_token_id", "eos_token_id", "resolution"}
    allowed = [k for k in known if k not in fixed]
    for key, value in values.items():
        if key not in allowed:
            raise BioresConfigError(f"--tiny_config: unknown key {key!r} (known: {', '.join(allowed)})")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise BioresConfigError(f"--tiny_config: {key} must be a positive integer, got {value!r}")
    if "vision_hidden" in values or "heads" in values:
        heads = values.get("heads", 4)
        for key in ("vision_hidden", "text_hidden"):
            width = values.get(key, 64)
            if width % heads:
                raise BioresConfigError(f"--tiny_config: {key} ({width}) must be divisible by heads ({heads})")
    return values


def check_sharding(training_args: Any) -> None:
    """Sharding without a GPU: FSDP2 with several processes runs (train/sharded.py); one process or FSDP1
    would train unsharded, and DeepSpeed's CPU ranks each train alone: one-line refusals."""
    import os

    import torch

    if torch.cuda.is_available():
        return
    from .sharded import check_cpu_fsdp

    check_cpu_fsdp(training_args)  # FSDP2 runs on CPU (train/sharded.py); one process or FSDP1 would not shard
    if training_args.deepspeed and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise BioresConfigError(
            "DeepSpeed with several CPU processes: each rank would train alone with its own data; run DeepSpeed on GPUs"
        )


def check_training_flags(training_args: Any) -> None:
    """Flags transformers would accept and then fail on (or silently ignore) later."""
    check_sharding(training_args)
    if training_args.per_device_train_batch_size < 1:
        raise BioresConfigError(
            f"--per_device_train_batch_size must be at least 1, got {training_args.per_device_train_batch_size}"
        )
    if training_args.gradient_accumulation_steps < 1:
        raise BioresConfigError(
            f"--gradient_accumulation_steps must be at least 1, got {training_args.gradient_accumulation_steps}"
        )
    from .lora import check_lora_flags

    check_lora_flags(training_args)
    resume = training_args.resume_from_checkpoint
    if resume and str(resume).lower() not in ("last", "latest", "true", "auto"):
        path = Path(resume)
        if not path.is_dir():
            raise BioresConfigError(
                f"--resume_from_checkpoint {resume} does not exist (use 'last' for the newest checkpoint in "
                f"--output_dir)"
            )
        if not (path / "trainer_state.json").is_file():
            raise BioresConfigError(
                f"--resume_from_checkpoint {resume} is not a checkpoint folder (no trainer_state.json)"
            )
