"""Variable-length (packed, block-diagonal) self-attention kernels with interchangeable backends.

``varlen_attention(q, k, v, cu_seqlens, max_seqlen, scale)`` takes packed ``[total, heads, head_dim]`` tensors
(see :mod:`biores_plugin.vision.packing`); every token attends only to the tokens of its own sequence.
Backends: ``flash_attn``, ``torch_varlen`` (CUDA half precision), ``sdpa_blockdiag``, ``sdpa_segments`` (any
device; the ``"auto"`` choice off CUDA). Pure torch: the transformers glue is :mod:`biores_plugin.vision.attention`.
Backend table and measurements: ``docs/vision_attention.md``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F

from biores_plugin.errors import BioresConfigError
from biores_plugin.vision.packing import block_diagonal_mask, equal_runs, lengths_from_cu_seqlens

__all__ = [
    "BACKENDS",
    "PackedSeqInfo",
    "available_backends",
    "backend_unavailable_reason",
    "resolve_backend",
    "varlen_attention",
]

BACKENDS: tuple[str, ...] = ("flash_attn", "torch_varlen", "sdpa_blockdiag", "sdpa_segments")
_HALF = (torch.float16, torch.bfloat16)


# --------------------------------------------------------------------------------------------------- kernels
@cache
def _flash_attn_varlen_func() -> Callable | None:
    try:
        from flash_attn import flash_attn_varlen_func  # type: ignore[import-not-found]
    except ImportError:  # not installed: the other kernels serve
        return None
    except Exception as exc:  # noqa: BLE001 - installed, but its CUDA extension fails (OSError, RuntimeError, ...)
        import logging

        logging.getLogger(__name__).warning(
            "biores: flash-attn is installed but does not import (%s: %s); the flash_attn backend is unavailable",
            type(exc).__name__,
            exc,
        )
        return None
    return flash_attn_varlen_func


@cache
def _torch_varlen_attn() -> Callable | None:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # a torch without varlen attention (< 2.9): the other kernels serve
        return None
    return varlen_attn


@cache
def _torch_varlen_params() -> frozenset[str]:
    fn = _torch_varlen_attn()
    return frozenset(inspect.signature(fn).parameters) if fn is not None else frozenset()


def backend_unavailable_reason(
    backend: str,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    dropout: float = 0.0,
) -> str | None:
    """``None`` when ``backend`` can run on ``device``/``dtype`` (either may be None = don't check), else why not."""
    if backend not in BACKENDS:
        raise BioresConfigError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)} or 'auto'")
    if backend in ("sdpa_blockdiag", "sdpa_segments"):
        return None
    dev = torch.device(device) if device is not None else None
    if backend == "flash_attn":
        if _flash_attn_varlen_func() is None:
            return "the flash_attn package is not installed (pip install flash-attn)"
    else:
        if _torch_varlen_attn() is None:
            return f"torch {torch.__version__} has no torch.nn.attention.varlen.varlen_attn (needs torch >= 2.9)"
        if dropout > 0.0:
            return "torch.nn.attention.varlen.varlen_attn has no dropout"
    if dev is not None and dev.type != "cuda":
        return f"it needs CUDA tensors, got device {dev.type!r}"
    if dev is None and not torch.cuda.is_available():
        return "it needs CUDA and torch.cuda.is_available() is False"
    if dtype is not None and dtype not in _HALF:
        return f"it needs float16/bfloat16 tensors, got {dtype}"
    return None


def available_backends(
    device: torch.device | str | None = None, dtype: torch.dtype | None = None, dropout: float = 0.0
) -> list[str]:
    """Backends usable for tensors on ``device`` (default: CUDA if available, else CPU) with ``dtype``."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return [b for b in BACKENDS if backend_unavailable_reason(b, device, dtype, dropout) is None]


def resolve_backend(
    backend: str, device: torch.device | str, dtype: torch.dtype | None = None, dropout: float = 0.0
) -> str:
    """Map ``"auto"`` to a concrete backend; check that a forced backend can run (BioresConfigError if not)."""
    if backend == "auto":
        if torch.device(device).type == "cuda":
            for cand in ("flash_attn", "torch_varlen"):
                if backend_unavailable_reason(cand, device, dtype, dropout) is None:
                    return cand
        return "sdpa_segments"
    reason = backend_unavailable_reason(backend, device, dtype, dropout)  # raises on unknown names
    if reason is not None:
        raise BioresConfigError(f"attention backend {backend!r} is unavailable: {reason}")
    return backend


def _sdpa_segments(q, k, v, lengths, scale, dropout, causal) -> torch.Tensor:
    """SDPA per sequence; consecutive sequences of one length go as one batch (a batch row gets exactly what it
    would alone, and images of one resolution, the common case, take one call instead of one each)."""
    lengths = [n for n in lengths if n]
    outs = []
    start = 0
    for first, count in equal_runs(lengths):
        n = lengths[first]
        end = start + count * n
        # [m*L, H, D] -> [m, H, L, D]: the strided layout a stock attention module hands to SDPA.
        o = F.scaled_dot_product_attention(
            q[start:end].unflatten(0, (count, n)).transpose(1, 2),
            k[start:end].unflatten(0, (count, n)).transpose(1, 2),
            v[start:end].unflatten(0, (count, n)).transpose(1, 2),
            dropout_p=dropout,
            scale=scale,
            is_causal=causal,
        )
        outs.append(o.transpose(1, 2).flatten(0, 1))
        start = end
    if not outs:
        return q.new_empty(0, q.shape[1], v.shape[2])
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)


def _sdpa_blockdiag(q, k, v, mask, scale, dropout) -> torch.Tensor:
    o = F.scaled_dot_product_attention(
        q.transpose(0, 1).unsqueeze(0),
        k.transpose(0, 1).unsqueeze(0),
        v.transpose(0, 1).unsqueeze(0),
        attn_mask=mask,
        dropout_p=dropout,
        scale=scale,
    )
    return o[0].transpose(0, 1)


def _blockdiag_mask(cu_seqlens: torch.Tensor, device: torch.device, causal: bool) -> torch.Tensor:
    mask = block_diagonal_mask(cu_seqlens, torch.bool, device=device)
    if causal:
        mask = mask.tril_()
    return mask


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    scale: float | None = None,
    dropout: float = 0.0,
    backend: str = "auto",
    *,
    causal: bool = False,
    lengths: Sequence[int] | None = None,
    _mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Block-diagonal attention over packed sequences.

    Args:
        q, k, v: ``[total, heads, head_dim]`` (same ``total`` and ``heads``).
        cu_seqlens: int ``[N + 1]`` cumulative lengths, ``cu_seqlens[-1] == total``.
        max_seqlen: the longest sequence (the kernels size their tiles with it).
        scale: softmax scale, default ``head_dim ** -0.5``.
        dropout: attention-probability dropout (pass 0.0 in eval).
        backend: ``"auto"`` or one of :data:`BACKENDS`.
        causal: causal masking inside every sequence (top-left aligned).
        lengths: host copy of the sequence lengths if the caller has it (saves a device sync for the SDPA paths).

    Returns ``[total, heads, head_dim_v]``.
    """
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise BioresConfigError(
            f"varlen_attention expects [total, heads, head_dim] q/k/v, got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if k.shape != q.shape or v.shape[:2] != q.shape[:2]:
        raise BioresConfigError(
            f"varlen_attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} disagree on total/heads"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    name = resolve_backend(backend, q.device, q.dtype, dropout)
    if cu_seqlens.device != q.device:
        cu_seqlens = cu_seqlens.to(q.device)
    total = q.shape[0]

    if name in ("flash_attn", "torch_varlen"):
        cu = cu_seqlens.to(torch.int32)
        max_seqlen = int(max_seqlen)
        if name == "flash_attn":
            return _flash_attn_varlen_func()(
                q, k, v, cu, cu, max_seqlen, max_seqlen, dropout_p=dropout, softmax_scale=scale, causal=causal
            )
        fn, params = _torch_varlen_attn(), _torch_varlen_params()
        extra: dict[str, Any] = {"scale": scale}
        if causal:
            if "is_causal" in params:
                extra["is_causal"] = True
            else:
                extra["window_size"] = (-1, 0)
        return fn(q, k, v, cu, cu, max_seqlen, max_seqlen, **extra)

    if lengths is None:
        lengths = lengths_from_cu_seqlens(cu_seqlens)
    if sum(lengths) != total:
        raise BioresConfigError(f"cu_seqlens covers {sum(lengths)} tokens but q has {total}")
    if name == "sdpa_segments":
        return _sdpa_segments(q, k, v, lengths, scale, dropout, causal)
    mask = _mask if _mask is not None else _blockdiag_mask(cu_seqlens, q.device, causal)
    return _sdpa_blockdiag(q, k, v, mask, scale, dropout)


# ------------------------------------------------------------------------------------ packing description
class PackedSeqInfo:
    """Everything the attention needs to know about one packed sequence (shared by all layers of a forward).

    Build it once per forward; ``as_kwargs()`` gives the transformers kwargs (``cu_seq_lens_q`` ...) plus
    itself under ``biores_packing`` so host-side lengths and the block-diagonal mask are computed only once.
    """

    __slots__ = ("backend", "cu_seqlens", "lengths", "max_seqlen", "_masks")

    def __init__(
        self,
        cu_seqlens: torch.Tensor,
        max_seqlen: int | None = None,
        lengths: Sequence[int] | None = None,
        backend: str = "auto",
    ) -> None:
        if backend != "auto" and backend not in BACKENDS:
            raise BioresConfigError(
                f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)} or 'auto'"
            )
        self.cu_seqlens = cu_seqlens.to(torch.int32) if cu_seqlens.dtype != torch.int32 else cu_seqlens
        self.lengths = (
            tuple(int(n) for n in lengths) if lengths is not None else tuple(lengths_from_cu_seqlens(cu_seqlens))
        )
        self.max_seqlen = int(max_seqlen) if max_seqlen is not None else max(self.lengths)
        self.backend = backend
        self._masks: dict[tuple, torch.Tensor] = {}

    @property
    def total(self) -> int:
        return sum(self.lengths)

    def mask(self, device: torch.device, causal: bool = False) -> torch.Tensor:
        key = (str(device), causal)
        if key not in self._masks:
            self._masks[key] = _blockdiag_mask(self.cu_seqlens, device, causal)
        return self._masks[key]

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "cu_seq_lens_q": self.cu_seqlens,
            "cu_seq_lens_k": self.cu_seqlens,
            "max_length_q": self.max_seqlen,
            "max_length_k": self.max_seqlen,
            "biores_packing": self,
        }

    def attend(self, q, k, v, scale=None, dropout=0.0, causal=False) -> torch.Tensor:
        name = resolve_backend(self.backend, q.device, q.dtype, dropout)
        mask = self.mask(q.device, causal) if name == "sdpa_blockdiag" else None
        return varlen_attention(
            q,
            k,
            v,
            self.cu_seqlens,
            self.max_seqlen,
            scale,
            dropout,
            name,
            causal=causal,
            lengths=self.lengths,
            _mask=mask,
        )

    def __repr__(self) -> str:
        return (
            f"PackedSeqInfo(n={len(self.lengths)}, total={self.total}, max={self.max_seqlen}, backend={self.backend!r})"
        )
