"""``--torch_dtype``: the dtype the weights train in, resolved once, applied on load, read back from the model."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from ..errors import BioresConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CHOICES = (*DTYPES, "auto")


def check_dtype(name: str) -> str:
    """``name`` if it is one of float32, bfloat16, float16, auto; else a one-line error."""
    if str(name) not in CHOICES:
        raise BioresConfigError(f"--torch_dtype must be one of {', '.join(CHOICES)}, got {name!r}")
    return str(name)


def resolve_dtype(name: str, config: Any = None) -> torch.dtype:
    """The weights' dtype: the named one, or for ``auto`` the checkpoint's ``dtype`` (float32 when it names none)."""
    name = check_dtype(name)
    if name != "auto":
        return DTYPES[name]
    for cfg in (config, getattr(config, "text_config", None)):
        value = getattr(cfg, "dtype", None) if cfg is not None else None
        if isinstance(value, str):
            value = DTYPES.get(value)
        if isinstance(value, torch.dtype) and value.is_floating_point:
            return value
    return torch.float32


def bytes_per_weight(model_args: Any, config: Any = None) -> int:
    return torch.empty(
        (), dtype=resolve_dtype(getattr(model_args, "torch_dtype", "float32") or "float32", config)
    ).element_size()


def apply_dtype(model: torch.nn.Module, name: str) -> torch.dtype:
    """Cast the model's floating weights to ``--torch_dtype`` (``auto``: the checkpoint's); returns the dtype."""
    dtype = resolve_dtype(name, getattr(model, "config", None))
    if any(p.is_floating_point() and p.dtype != dtype for p in model.parameters()):
        model.to(dtype)
    return dtype


def parameter_dtypes(model: torch.nn.Module) -> dict[str, int]:
    """Parameter count per dtype, read from the model (``{"bfloat16": 1234}``)."""
    counts: Counter[str] = Counter()
    for param in model.parameters():
        counts[str(param.dtype).replace("torch.", "")] += param.numel()
    return dict(counts)


def weights_dtype(model: torch.nn.Module) -> str:
    """The dtype holding most of the model's weights."""
    counts = parameter_dtypes(model)
    return max(counts, key=counts.get) if counts else "none"
