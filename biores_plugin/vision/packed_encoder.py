"""Packed native-resolution encoding of differently sized images through a CLIP / SigLIP tower.

Each image is embedded at its own size by the tower's own embeddings (``interpolate_pos_encoding``),
all tokens run as one padding-free sequence through the tower's layers with block-diagonal
attention: the result equals encoding the images one by one. docs/vision_attention.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from biores_plugin.errors import BioresConfigError
from biores_plugin.vision.attention import enable_packed_attention
from biores_plugin.vision.kernels import BACKENDS, PackedSeqInfo, resolve_backend
from biores_plugin.vision.packing import cu_seqlens_from_lengths, equal_runs

__all__ = [
    "PackedVisionOutput",
    "TowerSpec",
    "encode_packed",
    "forward_packed",
    "merge_2x2",
    "resolve_tower",
]

SELECT_MODES = ("patch", "cls_patch")
MERGE_MODES = ("concat", "mean")


# ------------------------------------------------------------------------------------------------ towers
@dataclass(frozen=True)
class TowerSpec:
    """The pieces of a vision tower ``encode_packed`` drives (all belong to the user's model)."""

    tower: nn.Module
    embeddings: nn.Module
    pre_norm: nn.Module | None  # CLIP's ``pre_layrnorm``
    layers: nn.ModuleList
    post_norm: nn.Module | None
    post_norm_on_sequence: bool  # SigLIP: last_hidden_state is post-normed; CLIP: only the pooled CLS token
    has_cls: bool
    patch_size: int
    num_channels: int

    @property
    def num_layers(self) -> int:
        return len(self.layers)


def _looks_like_tower(m: nn.Module) -> bool:
    emb, enc = getattr(m, "embeddings", None), getattr(m, "encoder", None)
    return (
        emb is not None
        and hasattr(emb, "patch_embedding")
        and hasattr(emb, "interpolate_pos_encoding")
        and isinstance(getattr(enc, "layers", None), nn.ModuleList)
    )


def resolve_tower(model: nn.Module) -> TowerSpec:
    """Find the CLIP/SigLIP-style vision transformer inside ``model`` (BioresConfigError if there is none)."""
    seen, m = set(), model
    while m is not None and id(m) not in seen:
        seen.add(id(m))
        if _looks_like_tower(m):
            break
        inner = getattr(m, "vision_model", None)
        if inner is None:
            inner = getattr(m, "vision_tower", None)
        m = inner if isinstance(inner, nn.Module) else None
    else:
        m = None
    if m is None:
        raise BioresConfigError(
            f"{type(model).__name__} is not a CLIP/SigLIP vision tower (needs .embeddings.patch_embedding, "
            ".embeddings.interpolate_pos_encoding and .encoder.layers, or a .vision_model / .vision_tower holding one)"
        )
    emb = m.embeddings
    pre_norm = getattr(m, "pre_layrnorm", None)
    post_norm = getattr(m, "post_layernorm", None)
    conv = emb.patch_embedding
    patch = conv.kernel_size[0] if isinstance(conv.kernel_size, tuple) else int(conv.kernel_size)
    return TowerSpec(
        tower=m,
        embeddings=emb,
        pre_norm=pre_norm,
        layers=m.encoder.layers,
        post_norm=post_norm,
        post_norm_on_sequence=pre_norm is None,
        has_cls=getattr(emb, "class_embedding", None) is not None,
        patch_size=int(patch),
        num_channels=int(conv.in_channels),
    )


# ------------------------------------------------------------------------------------------------ output
@dataclass
class PackedVisionOutput:
    """Packed features of N images.

    ``features[cu_seqlens[i]:cu_seqlens[i + 1]]`` are image ``i``'s tokens in row-major patch order (preceded by
    its class token when ``has_cls``); ``grid_hw[i] = (h_patches, w_patches)``.
    """

    features: torch.Tensor
    cu_seqlens: torch.Tensor
    grid_hw: list[tuple[int, int]]
    has_cls: bool = False
    lengths: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.lengths:
            self.lengths = [h * w + int(self.has_cls) for h, w in self.grid_hw]

    @property
    def per_image(self) -> list[torch.Tensor]:
        """Views ``[L_i, D]`` into ``features``, one per image."""
        return list(torch.split(self.features, self.lengths, dim=0))

    @property
    def max_seqlen(self) -> int:
        return max(self.lengths)

    @property
    def num_images(self) -> int:
        return len(self.lengths)

    def __len__(self) -> int:
        return len(self.lengths)


def _packed_model_output_cls():
    """``BaseModelOutputWithPooling`` + ``cu_seqlens`` / ``grid_hw`` (built lazily: transformers import)."""
    global _PACKED_MODEL_OUTPUT
    if _PACKED_MODEL_OUTPUT is None:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        @dataclass
        class PackedBaseModelOutput(BaseModelOutputWithPooling):
            """``last_hidden_state`` / ``hidden_states[i]`` are packed ``[1, total, D]``; image ``j`` owns tokens
            ``cu_seqlens[j]:cu_seqlens[j + 1]``. ``pooler_output`` is ``[num_images, D]`` (or None)."""

            cu_seqlens: torch.Tensor | None = None
            grid_hw: list[tuple[int, int]] | None = None

        _PACKED_MODEL_OUTPUT = PackedBaseModelOutput
    return _PACKED_MODEL_OUTPUT


_PACKED_MODEL_OUTPUT = None


# ------------------------------------------------------------------------------------------------ running
@contextlib.contextmanager
def _no_outer_output_capture() -> Iterator[None]:
    """Keep an enclosing transformers ``capture_outputs`` collector from recording our layer outputs."""
    try:
        from transformers.utils.output_capturing import _active_collector
    except ImportError:  # pragma: no cover
        yield
        return
    token = _active_collector.set(None)
    try:
        yield
    finally:
        _active_collector.reset(token)


def _as_image_list(images: Any, spec: TowerSpec) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = [images]
        elif images.dim() == 4:
            images = list(images.unbind(0))
        else:
            raise BioresConfigError(f"images must be [C, H, W] tensors, got a tensor of shape {tuple(images.shape)}")
    # a list may also hold [B, C, H, W] batches of same-size images: flatten them, in order
    images = [
        x
        for item in images
        for x in (item.unbind(0) if isinstance(item, torch.Tensor) and item.dim() == 4 else (item,))
    ]
    if not images:
        raise BioresConfigError("encode_packed needs at least one image")
    p = spec.patch_size
    for i, img in enumerate(images):
        if not isinstance(img, torch.Tensor) or img.dim() != 3:
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise BioresConfigError(f"image {i}: expected a [C, H, W] tensor, got {shape}")
        c, h, w = img.shape
        if c != spec.num_channels:
            raise BioresConfigError(f"image {i}: has {c} channels, the tower expects {spec.num_channels}")
        if h < p or w < p:
            raise BioresConfigError(f"image {i}: {h}x{w} px is smaller than one {p}x{p} patch")
    return images


def _check_backend(backend: str, spec: TowerSpec) -> None:
    if backend != "auto" and backend not in BACKENDS:
        raise BioresConfigError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)} or 'auto'")
    w = spec.embeddings.patch_embedding.weight
    resolve_backend(backend, w.device, w.dtype)  # a forced backend that cannot run fails here, before any work


def _run_packed(
    spec: TowerSpec, images: Sequence[torch.Tensor], n_layers: int, keep_states: bool, backend: str
) -> tuple[torch.Tensor, list[torch.Tensor], PackedSeqInfo, list[tuple[int, int]]]:
    """Embed each image, pack, run ``n_layers`` encoder layers. Returns ([1, T, D], states, info, grids)."""
    device = spec.embeddings.patch_embedding.weight.device
    p = spec.patch_size
    grids = [(int(img.shape[-2]) // p, int(img.shape[-1]) // p) for img in images]
    # The tower's own embeddings, what `interpolate_pos_encoding=True` gives each image alone; consecutive images of
    # one size go as one batch (the same numbers, one call).
    embeds, lengths = [], []
    for first, count in equal_runs([tuple(img.shape) for img in images]):
        batch = torch.stack([img.to(device) for img in images[first : first + count]])
        out = spec.embeddings(batch, interpolate_pos_encoding=True)  # [count, L, D]
        embeds.append(out.flatten(0, 1))
        lengths += [int(out.shape[1])] * count
    hidden = (embeds[0] if len(embeds) == 1 else torch.cat(embeds, dim=0)).unsqueeze(0)
    if spec.pre_norm is not None:
        hidden = spec.pre_norm(hidden)
    info = PackedSeqInfo(cu_seqlens_from_lengths(lengths, device=device), max(lengths), lengths, backend)
    enable_packed_attention(layer.self_attn for layer in spec.layers if hasattr(layer, "self_attn"))
    layer_kwargs = info.as_kwargs()
    states = [hidden] if keep_states else []
    with _no_outer_output_capture():
        for layer in spec.layers[:n_layers]:
            # hidden states positional (gradient checkpointing), attention_mask None: the blocks come from
            # cu_seqlens, which the layer hands down to its attention module (see attention.enable_packed_attention).
            out = layer(hidden, None, **layer_kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
            if keep_states:
                states.append(hidden)
    return hidden, states, info, grids


def _layer_index(feature_layer: int, num_layers: int) -> int:
    n_states = num_layers + 1
    if isinstance(feature_layer, bool) or not isinstance(feature_layer, int):
        raise BioresConfigError(f"feature_layer must be an int or None, got {feature_layer!r}")
    if not -n_states <= feature_layer < n_states:
        raise BioresConfigError(
            f"feature_layer={feature_layer} is out of range for a tower with {num_layers} layers "
            f"({n_states} hidden states: -{n_states} .. {n_states - 1})"
        )
    return feature_layer % n_states


def encode_packed(
    vision_model: nn.Module,
    images: Sequence[torch.Tensor] | torch.Tensor,
    *,
    feature_layer: int | None = -1,
    select: str = "patch",
    backend: str = "auto",
) -> PackedVisionOutput:
    """Encode differently sized images in one packed, padding-free pass.

    Args:
        vision_model: ``CLIPVisionModel`` / ``SiglipVisionModel`` or a model holding one (see module doc).
        images: list of ``[C, H_i, W_i]`` pixel tensors (already normalised; ``[B, C, H, W]`` items are split into
            their B images), or one ``[N, C, H, W]`` tensor; sides need not be multiples of the patch size (the
            trailing remainder is dropped by the patch conv, as in the tower).
        feature_layer: index into the tower's ``hidden_states`` (``0`` = embeddings after CLIP's pre-layernorm,
            ``i`` = output of layer ``i``), like LLaVA's ``mm_vision_select_layer``: ``-1`` last layer, ``-2`` the
            one before (layers after it are not run). ``None`` = the tower's ``last_hidden_state`` (SigLIP applies
            its ``post_layernorm`` there; CLIP does not).
        select: ``"patch"`` drops CLIP's class token (LLaVA's ``mm_vision_select_feature='patch'``),
            ``"cls_patch"`` keeps it first in each image's segment. SigLIP has no class token: both are the same.
        backend: attention backend, ``"auto"`` or one of ``attention.BACKENDS``.

    Returns a :class:`PackedVisionOutput` with ``features [sum tokens, D]``.
    """
    spec = resolve_tower(vision_model)
    if select not in SELECT_MODES:
        raise BioresConfigError(f"select must be one of {', '.join(SELECT_MODES)}, got {select!r}")
    _check_backend(backend, spec)
    imgs = _as_image_list(images, spec)
    if feature_layer is None:
        n_layers = spec.num_layers
    else:
        n_layers = _layer_index(feature_layer, spec.num_layers)
    hidden, _, info, grids = _run_packed(spec, imgs, n_layers, keep_states=False, backend=backend)
    feats = hidden[0]
    if feature_layer is None and spec.post_norm_on_sequence and spec.post_norm is not None:
        feats = spec.post_norm(feats)

    keep_cls = spec.has_cls and select == "cls_patch"
    if spec.has_cls and not keep_cls:
        feats = torch.cat([seg[1:] for seg in torch.split(feats, list(info.lengths), dim=0)], dim=0)
    lengths = [h * w + int(keep_cls) for h, w in grids]
    cu = info.cu_seqlens if keep_cls or not spec.has_cls else cu_seqlens_from_lengths(lengths, device=feats.device)
    return PackedVisionOutput(features=feats, cu_seqlens=cu, grid_hw=grids, has_cls=keep_cls, lengths=lengths)


def forward_packed(
    vision_model: nn.Module,
    pixel_values: Sequence[torch.Tensor],
    *,
    output_hidden_states: bool | None = None,
    backend: str = "auto",
    return_dict: bool = True,
):
    """A tower ``forward`` for a LIST of differently sized images (what ``patches/varlen_vision`` routes to).

    Returns a ``BaseModelOutputWithPooling`` subclass: ``last_hidden_state`` ``[1, total, D]`` with the tower's own
    semantics (SigLIP: after ``post_layernorm``; CLIP: raw last layer, class token first in every segment),
    ``hidden_states`` (if requested) a tuple of packed ``[1, total, D]``, ``pooler_output`` ``[N, D]`` (CLIP:
    ``post_layernorm`` of each class token; SigLIP: the attention-pooling head on each image, if the tower has
    one), plus ``cu_seqlens`` and ``grid_hw``.
    """
    spec = resolve_tower(vision_model)
    _check_backend(backend, spec)
    imgs = _as_image_list(pixel_values, spec)
    if output_hidden_states is None:
        output_hidden_states = bool(getattr(getattr(spec.tower, "config", None), "output_hidden_states", False))
    hidden, states, info, grids = _run_packed(
        spec, imgs, spec.num_layers, keep_states=bool(output_hidden_states), backend=backend
    )
    last = hidden
    pooled = None
    if spec.post_norm_on_sequence:
        if spec.post_norm is not None:
            last = spec.post_norm(hidden)
        head = getattr(spec.tower, "head", None) if getattr(spec.tower, "use_head", False) else None
        if head is not None:
            pooled = torch.cat([head(seg.unsqueeze(0)) for seg in torch.split(last[0], list(info.lengths))], dim=0)
    elif spec.has_cls:
        cls_tokens = last[0, info.cu_seqlens[:-1].long()]
        pooled = spec.post_norm(cls_tokens) if spec.post_norm is not None else cls_tokens
    out = _packed_model_output_cls()(
        last_hidden_state=last,
        pooler_output=pooled,
        hidden_states=tuple(states) if output_hidden_states else None,
        cu_seqlens=info.cu_seqlens,
        grid_hw=grids,
    )
    return out if return_dict else out.to_tuple()


# ------------------------------------------------------------------------------------------------ merging
def merge_2x2(
    features: torch.Tensor | PackedVisionOutput,
    grid_hw: Sequence[tuple[int, int]] | None = None,
    mode: str = "concat",
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Merge every 2x2 block of neighbouring patch tokens into one token (4x fewer visual tokens).

    ``features`` are packed patch tokens (no class token) in row-major order per image, ``grid_hw`` their grids.
    ``mode="concat"`` (default, Qwen2-VL style) concatenates the channels of the 4 neighbours in the order
    top-left, top-right, bottom-left, bottom-right -> ``[sum/4, 4*D]``; ``mode="mean"`` averages them
    -> ``[sum/4, D]``. Every grid side must be even. Returns ``(merged, new_grid_hw)``.
    """
    if isinstance(features, PackedVisionOutput):
        if features.has_cls:
            raise BioresConfigError("merge_2x2 works on patch tokens only; encode with select='patch'")
        grid_hw = features.grid_hw if grid_hw is None else grid_hw
        features = features.features
    if grid_hw is None:
        raise BioresConfigError("merge_2x2 needs grid_hw")
    if mode not in MERGE_MODES:
        raise BioresConfigError(f"merge_2x2 mode must be one of {', '.join(MERGE_MODES)}, got {mode!r}")
    if features.dim() != 2:
        raise BioresConfigError(f"merge_2x2 expects packed features [total, D], got {tuple(features.shape)}")
    grids = [(int(h), int(w)) for h, w in grid_hw]
    for i, (h, w) in enumerate(grids):
        if h % 2 or w % 2:
            raise BioresConfigError(
                f"merge_2x2 needs even patch grids, image {i} has {h}x{w} patches (use an even-grid resolution policy)"
            )
    lengths = [h * w for h, w in grids]
    if sum(lengths) != features.shape[0]:
        raise BioresConfigError(
            f"merge_2x2: grids cover {sum(lengths)} tokens but features have {features.shape[0]} "
            "(class tokens must be removed first)"
        )
    d = features.shape[1]
    merged = []
    for seg, (h, w) in zip(torch.split(features, lengths, dim=0), grids):
        blocks = seg.reshape(h // 2, 2, w // 2, 2, d).permute(0, 2, 1, 3, 4).reshape(h * w // 4, 4, d)
        merged.append(blocks.reshape(h * w // 4, 4 * d) if mode == "concat" else blocks.mean(dim=1))
    out = merged[0] if len(merged) == 1 else torch.cat(merged, dim=0)
    return out, [(h // 2, w // 2) for h, w in grids]
