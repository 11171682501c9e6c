"""transformers glue for packed attention: the ``"biores_varlen"`` ``AttentionInterface`` function.

:func:`register` (= :func:`register_with_transformers`) adds it to transformers; nothing is registered at import,
:func:`enable_packed_attention` and ``patches.varlen_vision.apply()`` register on use. Packing reaches it through
the transformers kwargs (``cu_seq_lens_q`` ...), ``biores_packing``, :func:`packed_attention_context` or restarting
``position_ids``; without any it behaves like ``"sdpa"``. ``"biores_varlen_lm"`` serves a packed language model.
Kernels: :mod:`biores_plugin.vision.kernels`; notes: ``docs/vision_attention.md``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from biores_plugin.errors import BioresConfigError
from biores_plugin.vision.kernels import PackedSeqInfo

__all__ = [
    "ATTN_IMPLEMENTATION",
    "LM_ATTN_IMPLEMENTATION",
    "biores_varlen_attention_forward",
    "disable_packed_attention",
    "enable_packed_attention",
    "packed_attention_context",
    "packing_from_kwargs",
    "packing_from_position_ids",
    "register",
    "register_with_transformers",
]

ATTN_IMPLEMENTATION = "biores_varlen"
# the same kernels for a padding-free language model: its mask function builds no dense packed mask
LM_ATTN_IMPLEMENTATION = "biores_varlen_lm"


# ------------------------------------------------------------------------------------ active packing
_ACTIVE: contextvars.ContextVar[PackedSeqInfo | None] = contextvars.ContextVar("biores_packed_seq", default=None)


@contextlib.contextmanager
def packed_attention_context(info: PackedSeqInfo | None) -> Iterator[PackedSeqInfo | None]:
    """Make ``info`` the packing seen by ``"biores_varlen"`` calls that receive no packed kwargs."""
    token = _ACTIVE.set(info)
    try:
        yield info
    finally:
        _ACTIVE.reset(token)


def packing_from_kwargs(kwargs: dict[str, Any]) -> PackedSeqInfo | None:
    """The packing described by ``kwargs`` (``biores_packing`` > ``cu_seq_lens_q``), or ``None``."""
    info = kwargs.get("biores_packing")
    if info is not None:
        return info
    cu_q = kwargs.get("cu_seq_lens_q")
    if cu_q is None:
        return None
    cu_k = kwargs.get("cu_seq_lens_k")
    if cu_k is not None and cu_k is not cu_q and not torch.equal(cu_k.to(cu_q.device), cu_q):
        raise BioresConfigError("biores_varlen is self-attention only: cu_seq_lens_k must equal cu_seq_lens_q")
    return PackedSeqInfo(cu_q, kwargs.get("max_length_q"), backend=kwargs.get("biores_backend", "auto"))


def packing_from_position_ids(position_ids: torch.Tensor | None) -> PackedSeqInfo | None:
    """The packing that restarting ``position_ids`` (``[1, total]``, transformers' packed format) describe."""
    if position_ids is None or position_ids.dim() != 2 or position_ids.shape[0] != 1 or position_ids.shape[1] < 2:
        return None
    row = position_ids[0]
    starts = torch.nonzero(row[1:] - row[:-1] != 1).flatten() + 1
    if starts.numel() == 0:
        return None
    bounds = [0, *starts.tolist(), row.numel()]
    return PackedSeqInfo(
        torch.tensor(bounds, dtype=torch.int32, device=row.device), lengths=[b - a for a, b in zip(bounds, bounds[1:])]
    )


# ----------------------------------------------------------------------------- transformers integration
def _sdpa_forward() -> Callable:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward


def biores_varlen_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers ``AttentionInterface`` function ``"biores_varlen"``.

    ``query``/``key``/``value`` are ``[batch, heads, seq, head_dim]``; returns ``([batch, seq, heads, head_dim],
    None)`` like the stock functions. Packed mode needs batch 1 and no attention mask.
    """
    info = packing_from_kwargs(kwargs) or _ACTIVE.get() or packing_from_position_ids(kwargs.get("position_ids"))
    if info is None:  # nothing packed: behave exactly like "sdpa"
        return _sdpa_forward()(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    if query.shape[0] != 1:
        raise BioresConfigError(f"biores_varlen packed attention needs batch size 1, got {query.shape[0]}")
    if attention_mask is not None:
        raise BioresConfigError("biores_varlen packed attention takes no attention_mask (cu_seqlens define the blocks)")
    if query.shape[2] != info.total:
        raise BioresConfigError(f"cu_seqlens cover {info.total} tokens but the sequence has {query.shape[2]}")
    causal = bool(is_causal if is_causal is not None else getattr(module, "is_causal", False))
    q = query[0].transpose(0, 1)
    k = key[0].transpose(0, 1)
    v = value[0].transpose(0, 1)
    if k.shape[1] != q.shape[1]:  # grouped-query attention
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    out = info.attend(q, k, v, scale=scaling, dropout=dropout, causal=causal)
    return out.unsqueeze(0), None


def register_with_transformers() -> None:
    """Register ``"biores_varlen"`` with transformers' AttentionInterface / AttentionMaskInterface (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, biores_varlen_attention_forward)
    try:
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

        AttentionMaskInterface.register(ATTN_IMPLEMENTATION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
        AttentionInterface.register(LM_ATTN_IMPLEMENTATION, biores_varlen_attention_forward)
        AttentionMaskInterface.register(LM_ATTN_IMPLEMENTATION, _padding_only_mask)
    except (ImportError, KeyError) as exc:  # pragma: no cover - older transformers layouts
        import logging

        logging.getLogger(__name__).warning(
            "biores: %s mask functions not registered with transformers (%s: %s); %s runs with the default masks",
            ATTN_IMPLEMENTATION,
            type(exc).__name__,
            exc,
            ATTN_IMPLEMENTATION,
        )


def _padding_only_mask(*args: Any, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor | None:
    """Mask function of ``"biores_varlen_lm"``: ``None`` without a padding mask (causality and sample
    boundaries come from cu_seqlens / position ids in the kernel), else sdpa's mask."""
    if attention_mask is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register() -> None:
    """Make ``attn_implementation="biores_varlen"`` usable in transformers (idempotent; nothing registers at import)."""
    register_with_transformers()


# ------------------------------------------------------------- hooks that route packed kwargs per module
_HOOK_ATTR = "_biores_packed_hooks"
_STACK_ATTR = "_biores_packed_stack"


def _has_packing(kwargs: dict) -> bool:
    return kwargs.get("biores_packing") is not None or kwargs.get("cu_seq_lens_q") is not None


def _pre_hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
    info = packing_from_kwargs(kwargs)
    if info is None:
        return None
    config = getattr(module, "config", None)
    previous = getattr(config, "_attn_implementation_internal", None) if config is not None else None
    if config is not None and previous != ATTN_IMPLEMENTATION:
        config._attn_implementation_internal = ATTN_IMPLEMENTATION
    module.__dict__.setdefault(_STACK_ATTR, []).append((_ACTIVE.set(info), config, previous))
    return None


def _post_hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
    stack = module.__dict__.get(_STACK_ATTR)
    if not stack or not _has_packing(kwargs):
        return None
    token, config, previous = stack.pop()
    if config is not None:
        config._attn_implementation_internal = previous
    _ACTIVE.reset(token)
    return None


def enable_packed_attention(modules: Iterable[torch.nn.Module]) -> int:
    """Install the packed-kwargs hooks on attention modules (idempotent); returns how many were new.

    After this, calling such a module with ``cu_seq_lens_q=...`` (or ``biores_packing=...``) runs it through
    ``"biores_varlen"`` whatever its configured implementation, and calls without them are untouched.
    """
    register_with_transformers()
    n = 0
    for m in modules:
        if getattr(m, _HOOK_ATTR, None) is not None:
            continue
        pre = m.register_forward_pre_hook(_pre_hook, with_kwargs=True)
        post = m.register_forward_hook(_post_hook, with_kwargs=True, always_call=True)
        m.__dict__[_HOOK_ATTR] = (pre, post)
        n += 1
    return n


def disable_packed_attention(modules: Iterable[torch.nn.Module]) -> int:
    """Remove the hooks :func:`enable_packed_attention` installed; returns how many were removed."""
    n = 0
    for m in modules:
        handles = m.__dict__.pop(_HOOK_ATTR, None)
        if handles is None:
            continue
        for h in handles:
            h.remove()
        m.__dict__.pop(_STACK_ATTR, None)
        n += 1
    return n
