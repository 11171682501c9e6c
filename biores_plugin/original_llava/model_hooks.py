"""Model and inference hooks: llava's tower, multimodal splice and ``process_images`` at native sizes.

Each ``hook_*`` wraps one llava function (group ``"llava.hooks"``), returns False when that point
does not exist in the installed llava flavour, and changes behaviour only for native inputs
(differently sized images, or ``image_aspect_ratio == 'native'``). The table is in docs/llava.md.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch

from biores_plugin.errors import BioresConfigError
from biores_plugin.original_llava.packing import maybe_pack
from biores_plugin.original_llava.points import HOOK_GROUP, import_or_none, wrap_point
from biores_plugin.original_llava.processor import NativeImages, image_at_policy, native_processor_for
from biores_plugin.original_llava.resolution import inference_policy
from biores_plugin.original_llava.state import active_state, log_event

__all__ = ["hook_encode_images", "hook_prepare_inputs", "hook_process_images", "hook_tower_forward"]


# ------------------------------------------------------------------------------------------- the tower
def _images_need_native(tower: Any, images: Any) -> bool:
    side = getattr(getattr(tower, "config", None), "image_size", None)
    side = int(side) if isinstance(side, int) else None
    if isinstance(images, torch.Tensor):
        return images.dim() == 4 and side is not None and tuple(images.shape[-2:]) != (side, side)
    if (
        isinstance(images, (list, tuple))
        and images
        and all(isinstance(x, torch.Tensor) and x.dim() == 3 for x in images)
    ):
        return side is None or any(tuple(x.shape[-2:]) != (side, side) for x in images)
    return False


def _native_tower_features(tower: Any, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[N_i, D]`` features of differently sized images, with llava's select_layer / select_feature."""
    from biores_plugin.vision import encode_packed

    device, dtype = tower.device, tower.dtype
    imgs = [x.to(device=device, dtype=dtype) for x in images]
    select = getattr(tower, "select_feature", "patch")
    if select in ("patch", "cls_patch"):
        try:
            packed = encode_packed(tower.vision_tower, imgs, feature_layer=int(tower.select_layer), select=select)
            return list(packed.per_image)
        except BioresConfigError:
            pass  # not a CLIP/SigLIP-style tower: fall back to the tower's own forward, one image at a time
    feats = []
    for img in imgs:
        out = tower.vision_tower(img.unsqueeze(0), output_hidden_states=True, interpolate_pos_encoding=True)
        feats.append(tower.feature_select(out)[0])
    return feats


def _tower_forward(orig):
    @functools.wraps(orig)
    def forward(self, images, *args, **kwargs):
        if args or kwargs or not _images_need_native(self, images):
            return orig(self, images, *args, **kwargs)
        with torch.no_grad():  # the stock forward is no_grad too: the tower stays frozen
            if isinstance(images, torch.Tensor):
                feats = _native_tower_features(self, list(images.unbind(0)))
                return torch.stack(feats, dim=0).to(images.dtype)
            feats = _native_tower_features(self, list(images))
            return [f.unsqueeze(0).to(x.dtype) for f, x in zip(feats, images)]

    return forward


def hook_tower_forward() -> bool:
    module = import_or_none("llava.model.multimodal_encoder.clip_encoder")
    tower_cls = getattr(module, "CLIPVisionTower", None)
    return wrap_point(tower_cls, "forward", _tower_forward, group=HOOK_GROUP, label="tower_forward")


# ------------------------------------------------------------------------------ the multimodal splice
def _encode_images(orig):
    @functools.wraps(orig)
    def encode_images(self, images, *args, **kwargs):
        if not isinstance(images, NativeImages):
            return orig(self, images, *args, **kwargs)
        tower = self.get_model().get_vision_tower()
        per_image = tower(list(images))  # hooked tower forward: list of [1, N_i, D_v]
        per_image = [f[0] if f.dim() == 3 else f for f in per_image]
        lengths = [int(f.shape[0]) for f in per_image]
        projected = self.get_model().mm_projector(torch.cat(per_image, dim=0))
        images.visual_tokens = lengths
        return list(torch.split(projected, lengths, dim=0))

    return encode_images


def hook_encode_images(meta_cls: type) -> bool:
    return wrap_point(meta_cls, "encode_images", _encode_images, group=HOOK_GROUP, label="encode_images")


def _wants_native(model: Any, images: Any) -> bool:
    if isinstance(images, NativeImages) or not isinstance(images, list) or not images:
        return False
    if not all(isinstance(x, torch.Tensor) and x.dim() == 3 for x in images):
        return False  # anyres crops ([P, 3, H, W] per image) keep llava's own path
    if getattr(getattr(model, "config", None), "image_aspect_ratio", None) == "native":
        return True
    return len({tuple(x.shape) for x in images}) > 1


def _log_batch(images: NativeImages, out: tuple) -> None:
    state = active_state()
    assert state is not None
    state.step += 1
    attention_mask, embeds = out[2], out[4]
    if attention_mask is not None:
        seq_lens = [int(x) for x in attention_mask.sum(dim=1).tolist()]
    elif embeds is not None:
        seq_lens = [int(embeds.shape[1])] * int(embeds.shape[0])
    else:  # pragma: no cover
        seq_lens = []
    log_event(
        "batch",
        step=state.step,
        image_sizes_hw=images.sizes,
        visual_tokens=list(getattr(images, "visual_tokens", [])),
        seq_lens=seq_lens,
    )


def _prepare_inputs(orig):
    signature = inspect.signature(orig)

    @functools.wraps(orig)
    def prepare_inputs_labels_for_multimodal(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        images = bound.arguments.get("images")
        if not _wants_native(self, images):
            return maybe_pack(self, orig(*bound.args, **bound.kwargs))
        native = NativeImages(images)
        bound.arguments["images"] = native
        out = orig(*bound.args, **bound.kwargs)
        if getattr(self, "training", False) and active_state() is not None:
            _log_batch(native, out)
        return maybe_pack(self, out)  # --pack_sequences True: one padding-free row

    return prepare_inputs_labels_for_multimodal


def hook_prepare_inputs(meta_cls: type) -> bool:
    orig = getattr(meta_cls, "prepare_inputs_labels_for_multimodal", None)
    if orig is None or "images" not in inspect.signature(orig).parameters:
        return False
    return wrap_point(
        meta_cls, "prepare_inputs_labels_for_multimodal", _prepare_inputs, group=HOOK_GROUP, label="prepare_inputs"
    )


# ------------------------------------------------------------------------------------------ inference
def _process_images(orig):
    @functools.wraps(orig)
    def process_images(images, image_processor, model_cfg, *args, **kwargs):
        if getattr(model_cfg, "image_aspect_ratio", None) != "native":
            return orig(images, image_processor, model_cfg, *args, **kwargs)
        policy = inference_policy(
            getattr(model_cfg, "biores", None),
            int(getattr(image_processor, "patch_size", None) or 14),
            min_pixels=getattr(model_cfg, "min_pixels", None),
            max_pixels=getattr(model_cfg, "max_pixels", None),
        )
        native = native_processor_for(getattr(image_processor, "base", image_processor), policy)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        return [image_at_policy(native, image, policy) for image in items]

    return process_images


def hook_process_images() -> bool:
    """``llava.mm_utils.process_images``, also where llava modules imported it by name."""
    mm_utils = import_or_none("llava.mm_utils")
    return wrap_point(
        mm_utils, "process_images", _process_images, group=HOOK_GROUP, label="process_images", rebind=True
    )
