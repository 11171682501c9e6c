"""LoRA with LLaVA's flags (``--lora_enable --lora_r --lora_alpha --lora_dropout``) via peft.

As in LLaVA, adapters go on every linear layer of the language model (not the tower, the
projector or ``lm_head``) and the projector stays fully trainable. ``--lora_save merged`` folds
the adapters into a plain checkpoint; ``adapter`` writes peft's adapter files plus
``non_lora_trainables.bin`` (LLaVA's name for the projector weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import BioresConfigError

SKIP = ("vision_tower", "visual", "multi_modal_projector", "mm_projector", "lm_head")
SAVE_MODES = ("merged", "adapter")


def lora_targets(model: Any) -> list[str]:
    """Names of the language model's linear layers (LLaVA's ``find_all_linear_names``)."""
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(part in name for part in SKIP):
            names.add(name.rsplit(".", 1)[-1])
    if not names:
        raise BioresConfigError("--lora_enable: the model has no linear layers to adapt")
    return sorted(names)


def check_lora_flags(args: Any) -> None:
    if not args.lora_enable:
        return
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise BioresConfigError("--lora_enable needs the peft package (pip install peft)")
    if args.lora_r < 1:
        raise BioresConfigError(f"--lora_r must be at least 1, got {args.lora_r}")
    if not 0 <= args.lora_dropout < 1:
        raise BioresConfigError(f"--lora_dropout must be in [0, 1), got {args.lora_dropout}")
    if args.lora_save not in SAVE_MODES:
        raise BioresConfigError(f"--lora_save must be one of {', '.join(SAVE_MODES)}, got {args.lora_save!r}")
    if args.lora_bias not in ("none", "all", "lora_only"):
        raise BioresConfigError(f"--lora_bias must be none, all or lora_only, got {args.lora_bias!r}")


def apply_lora(model: Any, args: Any) -> Any:
    """Wrap ``model`` in a peft ``LoraConfig`` model; projector (and Qwen's merger) stay trainable."""
    from peft import LoraConfig, get_peft_model

    check_lora_flags(args)
    keep = {n for n, p in model.named_parameters() if p.requires_grad and _is_projector(n)}
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        bias=args.lora_bias,
        target_modules=lora_targets(model),
        exclude_modules=_exclude_regex(),
    )
    peft_model = get_peft_model(model, config)
    for name, param in peft_model.named_parameters():
        if any(name.endswith(k) for k in keep):
            param.requires_grad = True
    return peft_model


def _exclude_regex() -> str:
    return r".*(" + "|".join(SKIP) + r").*"


def _is_projector(name: str) -> bool:
    return "multi_modal_projector" in name or ".merger." in f".{name}"


def save_lora(model: Any, output_dir: str | Path, mode: str) -> Any:
    """Save the run's result; returns the model that was saved (merged or the peft wrapper)."""
    out = Path(output_dir)
    if mode == "merged":
        merged = model.merge_and_unload()
        merged.save_pretrained(out)
        return merged
    model.save_pretrained(out)  # adapter_config.json + adapter_model.safetensors
    extra = {
        n.replace("base_model.model.", "", 1): p.detach().cpu()
        for n, p in model.named_parameters()
        if p.requires_grad and "lora_" not in n
    }
    torch.save(extra, out / "non_lora_trainables.bin")
    return model
