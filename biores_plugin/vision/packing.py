"""Packing helpers for variable-length (varlen) sequences.

A *packed* batch stores N sequences of lengths ``L_0 .. L_{N-1}`` back to back along the first dimension
(``[sum L_i, ...]``), with no padding. Sequence ``i`` occupies rows ``cu_seqlens[i]:cu_seqlens[i + 1]`` where
``cu_seqlens`` is the int32 cumulative-length vector ``[0, L_0, L_0 + L_1, ..., sum L_i]`` that flash-attn's
varlen kernels, ``torch.nn.attention.varlen.varlen_attn`` and transformers' ``cu_seq_lens_q`` kwarg all expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from biores_plugin.errors import BioresConfigError

__all__ = [
    "block_diagonal_mask",
    "cu_seqlens_from_lengths",
    "lengths_from_cu_seqlens",
    "max_seqlen_from_cu_seqlens",
    "pack",
    "segment_ids",
    "unpack",
]


def cu_seqlens_from_lengths(
    lengths: Sequence[int] | torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """``[L_0, L_1, ...]`` -> int32 ``[0, L_0, L_0 + L_1, ...]`` (length N + 1)."""
    if isinstance(lengths, torch.Tensor):
        if lengths.dim() != 1:
            raise BioresConfigError(f"lengths must be 1-D, got shape {tuple(lengths.shape)}")
        lens = lengths.to(dtype=torch.int64, device=device if device is not None else lengths.device)
    else:
        lens = torch.as_tensor([int(n) for n in lengths], dtype=torch.int64, device=device)
    if lens.numel() == 0:
        raise BioresConfigError("cannot build cu_seqlens from an empty list of lengths")
    if bool((lens < 0).any()):
        raise BioresConfigError(f"sequence lengths must be >= 0, got {lens.tolist()}")
    cu = torch.zeros(lens.numel() + 1, dtype=torch.int32, device=lens.device)
    cu[1:] = torch.cumsum(lens, 0).to(torch.int32)
    return cu


def _check_cu_seqlens(cu_seqlens: torch.Tensor) -> None:
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise BioresConfigError("cu_seqlens must be a 1-D tensor [0, L_0, L_0 + L_1, ...] with at least 2 entries")
    if cu_seqlens.dtype.is_floating_point or cu_seqlens.dtype == torch.bool:
        raise BioresConfigError(f"cu_seqlens must be an integer tensor, got {cu_seqlens.dtype}")


def lengths_from_cu_seqlens(cu_seqlens: torch.Tensor) -> list[int]:
    """Inverse of :func:`cu_seqlens_from_lengths` (a host list; syncs once on CUDA)."""
    _check_cu_seqlens(cu_seqlens)
    cu = cu_seqlens.tolist()
    if cu[0] != 0 or any(b < a for a, b in zip(cu, cu[1:])):
        raise BioresConfigError(f"cu_seqlens must start at 0 and be non-decreasing, got {cu}")
    return [b - a for a, b in zip(cu, cu[1:])]


def max_seqlen_from_cu_seqlens(cu_seqlens: torch.Tensor) -> int:
    return max(lengths_from_cu_seqlens(cu_seqlens))


def pack(tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Concatenate ``[L_i, *rest]`` tensors into ``([sum L_i, *rest], cu_seqlens, max_seqlen)``.

    All tensors must share trailing shape, dtype and device. ``cu_seqlens`` lives on that device.
    """
    tensors = list(tensors)
    if not tensors:
        raise BioresConfigError("pack() needs at least one tensor")
    rest, dtype, device = tensors[0].shape[1:], tensors[0].dtype, tensors[0].device
    for i, t in enumerate(tensors):
        if t.dim() < 1:
            raise BioresConfigError(f"pack(): tensor {i} is a scalar; expected [L, ...]")
        if t.shape[1:] != rest or t.dtype != dtype or t.device != device:
            raise BioresConfigError(
                f"pack(): tensor {i} has shape {tuple(t.shape)}/{t.dtype}/{t.device}, "
                f"expected [L, {', '.join(map(str, rest))}]/{dtype}/{device}"
            )
    lengths = [t.shape[0] for t in tensors]
    packed = tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)
    return packed, cu_seqlens_from_lengths(lengths, device=device), max(lengths)


def unpack(packed: torch.Tensor, cu_seqlens: torch.Tensor) -> list[torch.Tensor]:
    """Split ``[sum L_i, ...]`` back into a list of views ``[L_i, ...]`` (inverse of :func:`pack`)."""
    lengths = lengths_from_cu_seqlens(cu_seqlens)
    if sum(lengths) != packed.shape[0]:
        raise BioresConfigError(
            f"unpack(): cu_seqlens covers {sum(lengths)} rows but the packed tensor has {packed.shape[0]}"
        )
    return list(torch.split(packed, lengths, dim=0))


def segment_ids(cu_seqlens: torch.Tensor) -> torch.Tensor:
    """int64 ``[total]`` tensor holding, for every packed row, the index of the sequence it belongs to."""
    _check_cu_seqlens(cu_seqlens)
    lens = (cu_seqlens[1:] - cu_seqlens[:-1]).to(torch.int64)
    return torch.repeat_interleave(torch.arange(lens.numel(), device=cu_seqlens.device), lens)


def block_diagonal_mask(
    cu_seqlens: torch.Tensor, dtype: torch.dtype = torch.bool, device: torch.device | str | None = None
) -> torch.Tensor:
    """``[total, total]`` mask that lets each row attend only within its own sequence.

    ``dtype=torch.bool``: True = attend (the convention of ``scaled_dot_product_attention``).
    A floating dtype gives an additive mask: 0 inside the blocks, ``finfo(dtype).min`` outside.
    Memory is O(total^2): meant for CPU / small totals; the varlen kernels never build it.
    """
    seg = segment_ids(cu_seqlens)
    if device is not None:
        seg = seg.to(device)
    allowed = seg[:, None] == seg[None, :]
    if dtype == torch.bool:
        return allowed
    if not dtype.is_floating_point:
        raise BioresConfigError(f"block_diagonal_mask: dtype must be torch.bool or floating, got {dtype}")
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


def equal_runs(sizes: Sequence[Any]) -> list[tuple[int, int]]:
    """``(first, count)`` of each run of consecutive equal items of ``sizes``: ``[3, 3, 5, 3]`` ->
    ``[(0, 2), (2, 1), (3, 1)]``. Equal-sized neighbours (images of one resolution, segments of one length) are then
    processed as one batch, which gives each of them exactly what it would get alone."""
    runs: list[tuple[int, int]] = []
    for i, size in enumerate(sizes):
        if runs and sizes[runs[-1][0]] == size:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs
