"""Fine-tuning the Qwen2-VL / Qwen2.5-VL family with ``biores-train``'s resolution flags.

The checkpoint's own processor resizes (``smart_resize`` between ``--min_pixels`` and
``--max_pixels``) and patchifies; prompts use its chat template with lmms-eval's default system
prompt and image-first content, so ``qwen2_vl`` / ``qwen2_5_vl`` evaluate what was trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
from PIL import Image

from ..errors import BioresConfigError
from ..resolution import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, ResolutionConfig, apply_policy
from .checks import check_memory, folder_config
from .data import ImageListCollator

SYSTEM_PROMPT = "You are a helpful assistant."  # lmms-eval's qwen2_vl / qwen2_5_vl default


class QwenImage(NamedTuple):
    """One image as the Qwen processor patchified it."""

    patches: torch.Tensor  # [t * h * w, C * T * P * P]
    grid: torch.Tensor  # [3] = (t, h, w) in patches


class QwenVLTrainProcessor:
    """The interface ``ResolutionDataset`` uses (``process_images``, ``build_prompt``,
    ``expand_prompt``, ``policy``) on top of a Qwen2-VL family processor."""

    image_token = "<image>"

    def __init__(self, hf_processor: Any, resolution: ResolutionConfig, system_prompt: str = SYSTEM_PROMPT):
        self.hf = hf_processor
        self.tokenizer = hf_processor.tokenizer
        self.resolution = resolution
        self.policy = resolution.policy()
        self.system_prompt = system_prompt
        self.pad_token = getattr(hf_processor, "image_token", "<|image_pad|>")
        self.merge = int(hf_processor.image_processor.merge_size)
        self.min_pixels = resolution.min_pixels or DEFAULT_MIN_PIXELS
        self.max_pixels = resolution.max_pixels or DEFAULT_MAX_PIXELS
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def process_images(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        if not images:
            return {"pixel_values": [], "num_visual_tokens": torch.zeros(0, dtype=torch.long)}
        prepared = [apply_policy(img.convert("RGB"), self.policy) for img in images]
        out = self.hf.image_processor(images=prepared, size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}, return_tensors="pt")
        grids = out["image_grid_thw"]
        sizes = grids.prod(-1).tolist()
        chunks = torch.split(out["pixel_values"], sizes)
        counts = [s // (self.merge * self.merge) for s in sizes]
        for img, count in zip(prepared, counts):
            expected = self.policy.visual_tokens(*img.size)
            if expected != count:  # the sampler's and stats' token counts must be the processor's
                raise BioresConfigError(f"policy predicts {expected} visual tokens for {img.size}, the Qwen processor made {count}")
        return {"pixel_values": [QwenImage(c, g) for c, g in zip(chunks, grids)], "num_visual_tokens": torch.tensor(counts)}

    def build_prompt(self, text: str, n_images: int) -> str:
        body = text.replace(self.image_token, "").strip()
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": body}]
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + [{"role": "user", "content": content}]
        return self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def expand_prompt(self, text: str, counts: Sequence[int]) -> str:
        parts = text.split(self.pad_token)
        if len(parts) - 1 != len(counts):
            raise BioresConfigError(f"prompt has {len(parts) - 1} image slots for {len(counts)} images")
        return parts[0] + "".join(self.pad_token * count + part for count, part in zip(counts, parts[1:]))

    def save_pretrained(self, directory: str | Path) -> None:
        self.hf.image_processor.size = {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}
        self.hf.save_pretrained(directory)
        self.resolution.save_pretrained(directory)


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
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    path = model_args.model_name_or_path
    folder_config(path, "--model_name_or_path")
    if model_args.vision_tower:
        raise BioresConfigError("--vision_tower does not apply to a Qwen2-VL family checkpoint (its tower is built in)")
    if data_args.image_aspect_ratio != "native":
        raise BioresConfigError("a Qwen2-VL family model sees images at native resolution: use --image_aspect_ratio native (with --min_pixels/--max_pixels)")
    config = AutoConfig.from_pretrained(path)
    vision = config.vision_config
    patch, merge = int(vision.patch_size), int(vision.spatial_merge_size)
    if data_args.merge_size not in (1, merge):
        raise BioresConfigError(f"--merge_size {data_args.merge_size} does not match the checkpoint's spatial_merge_size {merge}")
    if data_args.patch_size not in (None, patch):
        raise BioresConfigError(f"--patch_size {data_args.patch_size} does not match the checkpoint's {patch}")
    model_cls = AutoModelForImageTextToText._model_mapping[type(config)]
    from .checks import meta_model

    check_memory(meta_model(model_cls, config), str(path), model_args, training_args)
    resolution = ResolutionConfig.from_dict({**ResolutionConfig.from_flags(data_args).to_dict(), "merge_size": merge}).resolved(patch)
    extra = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    from .precision import resolve_dtype

    dtype = resolve_dtype(getattr(model_args, "torch_dtype", "float32"), config)
    model = model_cls.from_pretrained(path, dtype=dtype, **extra)
    processor = QwenVLTrainProcessor(AutoProcessor.from_pretrained(path), resolution)
    model.config.biores = resolution.to_dict()
    return model, processor


def freeze_for_qwen(model: Any, model_args: Any) -> None:
    """``--freeze_vision_tower`` / ``--tune_mm_mlp_adapter`` on Qwen's ``visual`` (merger = projector)."""
    visual = model.model.visual
    if model_args.tune_mm_mlp_adapter:
        for name, param in model.named_parameters():
            param.requires_grad = ".merger." in f".{name}"
    elif model_args.freeze_vision_tower:
        for name, param in visual.named_parameters():
            param.requires_grad = name.startswith("merger.")
