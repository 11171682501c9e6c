"""Padding-free Qwen2-VL / Qwen2.5-VL / Qwen3-VL batches: a batch's samples back to back in one row.

The hard part is the 3-D (temporal, height, width) rope: each sample's positions come from the model's own
``get_rope_index`` (run on the padded batch, exactly the positions the padded forward would use), and the packed
row carries them as transformers' packed Qwen format ``position_ids [4, 1, total]``: row 0 the text positions
restarting at 0 for every sample (they mark the sample boundaries), rows 1-3 the 3-D rope positions. The
language model's attention then never crosses a boundary: ``biores_varlen_lm`` (one SDPA per sample, exact, on
CPU) or flash-attn varlen (on CUDA, in half precision), both reading the boundaries from those text positions;
the vision tower already attends per image (its own ``cu_seqlens`` from ``image_grid_thw``). No cu_seqlens
kwargs are passed: the Qwen forward hands its kwargs to the vision tower too, which would take them as its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import BioresConfigError
from .packing import pack_batch

__all__ = ["QwenPackingCollator", "pack_qwen_batch", "rope_index_of"]

SAMPLE_BOUNDS = "biores_sample_bounds"  # cu_seqlens of the packed row, for the loss only (popped before forward)


def rope_index_of(model: torch.nn.Module) -> Callable[..., Any]:
    """The model's own ``get_rope_index`` (``Qwen*VLModel``), from a ``...ForConditionalGeneration`` or a
    peft / FSDP wrapper around one."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        if hasattr(type(module), "get_rope_index"):
            return module.get_rope_index
        stack += [
            getattr(module, name)
            for name in ("model", "base_model", "module")
            if isinstance(getattr(module, name, None), torch.nn.Module)
        ]
    raise BioresConfigError(
        f"{type(model).__name__} has no get_rope_index: Qwen-VL sequence packing needs a Qwen2-VL family model"
    )


def pack_qwen_batch(batch: dict[str, Any], rope_index: Callable[..., Any]) -> dict[str, Any]:
    """A right-padded Qwen-VL batch (``QwenVLCollator``'s) as one padding-free row.

    Token fields are concatenated (each sample's first label ignored, as for any packed batch), images stay as
    they are (their order is the samples' order), ``mm_token_type_ids`` is packed like the tokens, and
    ``position_ids`` is ``[4, 1, total]`` (text positions, then the 3-D rope positions of the padded batch).
    """
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(ids)
    types = batch.get("mm_token_type_ids")
    if types is None:
        raise BioresConfigError("Qwen-VL sequence packing needs mm_token_type_ids (QwenVLCollator adds them)")
    with torch.no_grad():
        rope, _ = rope_index(
            ids, mm_token_type_ids=types, image_grid_thw=batch.get("image_grid_thw"), attention_mask=mask
        )
    keep = mask.bool()
    packed = pack_batch({k: v for k, v in batch.items() if k != "mm_token_type_ids"})
    lengths = keep.sum(1).tolist()
    packed["mm_token_type_ids"] = types[keep][None]
    text = packed.pop("position_ids")
    packed["position_ids"] = torch.cat([text[None], rope[:, keep][:, None].to(text.dtype)], dim=0)  # [4, 1, total]
    for key in ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "biores_packing"):
        packed.pop(key, None)
    packed[SAMPLE_BOUNDS] = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return packed


class QwenPackingCollator:
    """Wraps ``QwenVLCollator``: same samples, one padding-free row with the model's own 3-D rope positions."""

    def __init__(self, collator: Callable[[Sequence[dict[str, Any]]], dict[str, Any]], model: torch.nn.Module):
        self.collator = collator
        self.rope_index = rope_index_of(model)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return pack_qwen_batch(self.collator(features), self.rope_index)
