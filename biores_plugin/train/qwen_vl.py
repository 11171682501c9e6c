"""Fine-tuning the Qwen2-VL / Qwen2.5-VL family with ``biores-train``'s resolution flags: the
flags checked, the model and its training processor from :func:`biores_plugin.models.load`, the
collator of the Qwen model's inputs, and what the freezing flags freeze.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import BioresConfigError
from ..resolution import ResolutionConfig
from .checks import check_memory
from .data import ImageListCollator


class QwenVLCollator(ImageListCollator):
    """``ImageListCollator`` + the Qwen model's inputs: concatenated patches, ``image_grid_thw``
    and ``mm_token_type_ids`` (1 on image tokens)."""

    def __init__(self, pad_token_id: int, image_token_id: int):
        super().__init__(pad_token_id)
        self.image_token_id = int(image_token_id)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = super().__call__(features)
        images = batch.pop("pixel_values") or []
        if images:
            batch["pixel_values"] = torch.cat([i.patches for i in images])
            batch["image_grid_thw"] = torch.stack([i.grid for i in images])
        batch["mm_token_type_ids"] = (batch["input_ids"] == self.image_token_id).long()
        return batch


def build_qwen_vl(model_args: Any, data_args: Any, training_args: Any = None) -> tuple[Any, Any]:
    """Model and training processor of a Qwen2-VL / Qwen2.5-VL checkpoint folder."""
    from ..models import checkpoint_kind, empty_model, load

    path = model_args.model_name_or_path
    checkpoint_kind(path, training=True, flag="--model_name_or_path")
    if model_args.vision_tower:
        raise BioresConfigError("--vision_tower does not apply to a Qwen2-VL family checkpoint (its tower is built in)")
    if data_args.image_aspect_ratio != "native":
        raise BioresConfigError(
            "a Qwen2-VL family model sees images at native resolution: use --image_aspect_ratio native (with "
            "--min_pixels/--max_pixels)"
        )
    check_memory(empty_model(path), str(path), model_args, training_args)
    from transformers import AutoConfig

    from .precision import resolve_dtype

    dtype = resolve_dtype(getattr(model_args, "torch_dtype", "float32"), AutoConfig.from_pretrained(path))
    return load(
        path,
        ResolutionConfig.from_flags(data_args),
        training=True,
        dtype=dtype,
        attn_implementation=model_args.attn_implementation,
        flag="--model_name_or_path",
    )


def freeze_for_qwen(model: Any, model_args: Any) -> None:
    """``--freeze_vision_tower`` / ``--tune_mm_mlp_adapter`` on Qwen's ``visual`` (merger = projector)."""
    visual = model.model.visual
    if model_args.tune_mm_mlp_adapter:
        for name, param in model.named_parameters():
            param.requires_grad = ".merger." in f".{name}"
    elif model_args.freeze_vision_tower:
        for name, param in visual.named_parameters():
            param.requires_grad = name.startswith("merger.")
