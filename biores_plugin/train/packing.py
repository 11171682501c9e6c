"""Padding-free language-model batches: every sample of a batch back to back in one row.

:class:`PackingCollator` turns a right-padded batch into one row with restarting ``position_ids``
and ``cu_seq_lens_q`` / ``max_length_q`` (transformers' packed format, as ``DataCollatorWithFlattening``),
and the first label of each sample masked, so no loss crosses a boundary. :func:`enable_lm_packing`
picks the language model's attention for it: flash-attn varlen where it runs, else biores' varlen
kernels (exact per-sample SDPA on CPU). Loss and gradients equal the padded batch's. docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import BioresConfigError

__all__ = ["PackingCollator", "enable_lm_packing", "pack_batch", "pack_embeds", "padding_fraction"]

# per-token fields that travel with input_ids; everything else (images, counts, indices) is kept as is
TOKEN_FIELDS = ("input_ids", "labels", "loss_weights")
_IGNORE = {"labels": -100, "loss_weights": 0.0}


def pack_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """A right-padded batch (``attention_mask`` of ones then zeros per row) as one padding-free row."""
    from ..vision.kernels import PackedSeqInfo

    mask = batch.get("attention_mask")
    ids = batch["input_ids"]
    if mask is None:
        lengths = [ids.shape[1]] * ids.shape[0]
    else:
        lengths = mask.sum(1).tolist()
        if not bool((mask == (torch.arange(mask.shape[1])[None, :] < mask.sum(1, keepdim=True)).to(mask.dtype)).all()):
            raise BioresConfigError("sequence packing needs a right-padded batch (padding only at the end of each row)")
    if min(lengths) < 1:
        raise BioresConfigError("sequence packing got an empty sample")
    out = {k: v for k, v in batch.items() if k not in TOKEN_FIELDS and k != "attention_mask"}
    for key in TOKEN_FIELDS:
        if key not in batch:
            continue
        rows = [batch[key][i, :n] for i, n in enumerate(lengths)]
        if key in _IGNORE:  # the token before a boundary must not learn to predict the next sample
            rows = [torch.cat([row[:1].new_full((1,), _IGNORE[key]), row[1:]]) for row in rows]
        out[key] = torch.cat(rows)[None]
    out["position_ids"] = torch.cat([torch.arange(n) for n in lengths])[None]
    info = PackedSeqInfo(
        torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32), lengths=lengths
    )
    out.update(info.as_kwargs())
    out["use_cache"] = False  # transformers detects packed position ids only without a cache
    return out


def pack_embeds(
    inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None
) -> dict[str, Any]:
    """A right-padded ``[B, L, D]`` embedding batch (the original LLaVA's
    ``prepare_inputs_labels_for_multimodal`` output) as one row: ``inputs_embeds``, ``position_ids``,
    ``labels`` (each sample's first label ignored) and the cu_seqlens kwargs, no attention mask."""
    from ..vision.kernels import PackedSeqInfo

    keep = attention_mask.bool()
    lengths = keep.sum(1).tolist()
    if not bool((keep == (torch.arange(keep.shape[1], device=keep.device)[None, :] < keep.sum(1, keepdim=True))).all()):
        raise BioresConfigError("sequence packing needs a right-padded batch (padding only at the end of each row)")
    out: dict[str, Any] = {"inputs_embeds": inputs_embeds[keep][None], "use_cache": False}
    out["position_ids"] = torch.cat([torch.arange(n, device=inputs_embeds.device) for n in lengths])[None]
    if labels is not None:
        labels = labels.clone()
        labels[:, 0] = -100  # never a target in the padded batch either; here it sits after another sample
        out["labels"] = labels[keep][None]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=inputs_embeds.device)
    out.update(PackedSeqInfo(cu, lengths=lengths).as_kwargs())
    return out


class PackingCollator:
    """Wraps a right-padding collator (``ImageListCollator``): same batch, one padding-free row."""

    def __init__(self, collator: Callable[[Sequence[dict[str, Any]]], dict[str, Any]]):
        self.collator = collator

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return pack_batch(self.collator(features))


def padding_fraction(batch: dict[str, Any]) -> float:
    """Share of the language model's token slots that are padding (0 for a packed batch)."""
    mask = batch.get("attention_mask")
    return 0.0 if mask is None else 1.0 - float(mask.float().mean())


def _language_model(model: torch.nn.Module) -> torch.nn.Module:
    """A LLaVA's ``model.language_model``; a plain causal LM's ``model`` (or the module itself)."""
    inner = getattr(model, "model", model)
    return getattr(inner, "language_model", inner)


def enable_lm_packing(model: torch.nn.Module, backend: str = "auto") -> str:
    """Set the language model's attention for packed batches; returns the implementation chosen.

    ``auto``: ``flash_attention_2`` on CUDA in half precision when flash-attn imports, else
    ``biores_varlen_lm`` (torch varlen on CUDA, per-sample SDPA elsewhere). ``sdpa`` / ``eager`` keep
    transformers' own packed path (a block-diagonal mask built from the position ids).
    """
    from ..vision.attention import LM_ATTN_IMPLEMENTATION, register_with_transformers
    from ..vision.kernels import _flash_attn_varlen_func

    lm = _language_model(model)
    config = lm.config
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        backend = "sdpa" if backend == "auto" else backend  # windows need transformers' own masks
    if backend == "auto":
        param = next(lm.parameters())
        half = param.dtype in (torch.float16, torch.bfloat16)
        backend = (
            "flash_attention_2"
            if param.is_cuda and half and _flash_attn_varlen_func() is not None
            else LM_ATTN_IMPLEMENTATION
        )
    if backend not in (LM_ATTN_IMPLEMENTATION, "flash_attention_2", "sdpa", "eager"):
        raise BioresConfigError(
            f"LM packing backend must be auto, {LM_ATTN_IMPLEMENTATION}, flash_attention_2, sdpa or eager, got "
            f"{backend!r}"
        )
    register_with_transformers()
    config._attn_implementation = backend
    return backend
