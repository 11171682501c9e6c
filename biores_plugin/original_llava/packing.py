"""``--pack_sequences True`` for the original LLaVA: the multimodal splice's right-padded batch as one row.

LLaVA's ``prepare_inputs_labels_for_multimodal`` returns padded ``inputs_embeds`` / ``attention_mask`` / ``labels``;
with packing on (training only) the hook hands the language model :func:`biores_plugin.train.packing.pack_embeds`'s
row instead: no attention mask, restarting ``position_ids`` (the sample boundaries), each sample's first label
ignored. The language model's attention becomes ``biores_varlen_lm`` (one SDPA per sample on CPU, varlen kernels on
CUDA), which reads the boundaries from those positions. Loss and gradients equal the padded batch's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["maybe_pack", "packing_enabled", "set_packing"]

_ENABLED = {"on": False}


def set_packing(on: bool) -> None:
    _ENABLED["on"] = bool(on)


def packing_enabled() -> bool:
    return _ENABLED["on"]


def maybe_pack(model: Any, out: tuple) -> tuple:
    """``prepare_inputs_labels_for_multimodal``'s 6-tuple, packed when packing is on and the model trains."""
    if not packing_enabled() or not getattr(model, "training", False) or len(out) != 6:
        return out
    input_ids, _position_ids, attention_mask, cache, embeds, labels = out
    if embeds is None or attention_mask is None or cache is not None:
        return out
    from biores_plugin.train.packing import enable_lm_packing, pack_embeds
    from biores_plugin.vision.attention import LM_ATTN_IMPLEMENTATION

    if getattr(model.config, "_attn_implementation", None) != LM_ATTN_IMPLEMENTATION:
        enable_lm_packing(model, LM_ATTN_IMPLEMENTATION)
    packed = pack_embeds(embeds, attention_mask, labels)
    from biores_plugin.original_llava.state import active_state, log_event

    if active_state() is not None:  # what the language model is fed, next to the batch event
        log_event(
            "packed",
            rows=int(packed["inputs_embeds"].shape[0]),
            tokens=int(packed["inputs_embeds"].shape[1]),
            padded_slots=int(attention_mask.numel()),
            samples=int(attention_mask.shape[0]),
        )
    return input_ids, packed["position_ids"], None, None, packed["inputs_embeds"], packed.get("labels")
