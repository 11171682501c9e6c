"""Packed native-resolution vision encoding (CLIP / SigLIP towers) with variable-length attention.

- :mod:`.packing`        cu_seqlens / pack / unpack / block-diagonal masks
- :mod:`.kernels`        ``varlen_attention`` and its backends (pure torch), ``PackedSeqInfo``
- :mod:`.attention`      the ``"biores_varlen"`` / ``"biores_varlen_lm"`` transformers attention; :func:`register`
- :mod:`.packed_encoder` ``encode_packed`` (list of [C, H_i, W_i] images -> packed features), ``merge_2x2``

The towers' list-of-images patch: ``biores_plugin.patches.varlen_vision``. Importing registers nothing.
"""

from biores_plugin.vision.attention import (
    ATTN_IMPLEMENTATION,
    LM_ATTN_IMPLEMENTATION,
    enable_packed_attention,
    packed_attention_context,
    register,
)
from biores_plugin.vision.kernels import (
    BACKENDS,
    PackedSeqInfo,
    available_backends,
    varlen_attention,
)
from biores_plugin.vision.packed_encoder import (
    PackedVisionOutput,
    encode_packed,
    forward_packed,
    merge_2x2,
    resolve_tower,
)
from biores_plugin.vision.packing import (
    block_diagonal_mask,
    cu_seqlens_from_lengths,
    pack,
    unpack,
)

__all__ = [
    "ATTN_IMPLEMENTATION",
    "BACKENDS",
    "LM_ATTN_IMPLEMENTATION",
    "PackedSeqInfo",
    "PackedVisionOutput",
    "available_backends",
    "block_diagonal_mask",
    "cu_seqlens_from_lengths",
    "enable_packed_attention",
    "encode_packed",
    "forward_packed",
    "merge_2x2",
    "pack",
    "packed_attention_context",
    "register",
    "resolve_tower",
    "unpack",
    "varlen_attention",
]
