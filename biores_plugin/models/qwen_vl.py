"""The Qwen2-VL / Qwen2.5-VL / Qwen3-VL family: evaluated with its own processor (``stock.py``),
trained through :class:`QwenVLTrainProcessor`, which applies biores' policy and then the
checkpoint's processor (``smart_resize`` between the policy's ``min_pixels`` and ``max_pixels``).
Prompts use its chat template with lmms-eval's default system prompt and image-first content, so
``qwen2_vl`` / ``qwen2_5_vl`` evaluate what was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image

from ..errors import BioresConfigError
from ..resolution import ResolutionConfig, apply_policy
from .checkpoint import check_loading_info

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
        self.min_pixels, self.max_pixels = resolution.pixel_range
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def process_images(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        if not images:
            return {"pixel_values": [], "num_visual_tokens": torch.zeros(0, dtype=torch.long)}
        prepared = [apply_policy(img.convert("RGB"), self.policy) for img in images]
        out = self.hf.image_processor(
            images=prepared,
            size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
            return_tensors="pt",
        )
        grids = out["image_grid_thw"]
        sizes = grids.prod(-1).tolist()
        chunks = torch.split(out["pixel_values"], sizes)
        counts = [s // (self.merge * self.merge) for s in sizes]
        for img, count in zip(prepared, counts):
            expected = self.policy.visual_tokens(*img.size)
            if expected != count:  # the sampler's and stats' token counts must be the processor's
                raise BioresConfigError(
                    f"policy predicts {expected} visual tokens for {img.size}, the Qwen processor made {count}"
                )
        return {
            "pixel_values": [QwenImage(c, g) for c, g in zip(chunks, grids)],
            "num_visual_tokens": torch.tensor(counts),
        }

    def build_prompt(self, text: str, n_images: int) -> str:
        body = text.replace(self.image_token, "").strip()
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": body}]
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + [
            {"role": "user", "content": content}
        ]
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


def load_qwen_vl(
    path: str | Path, resolution: Any, *, training: bool = False, vision_backend: str = "auto", **load_kwargs: Any
) -> tuple[Any, Any]:
    """Evaluation: the checkpoint's own classes (``resolution``: ``min_pixels`` / ``max_pixels``
    overrides). Training: the model in float32 and a :class:`QwenVLTrainProcessor` at
    ``resolution`` (a ResolutionConfig; patch and merge sizes are the checkpoint's)."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    if not training:
        from .stock import load_stock

        return load_stock(path, dict(resolution or {}), **load_kwargs)
    config = AutoConfig.from_pretrained(path)
    vision = config.vision_config
    patch, merge = int(vision.patch_size), int(vision.spatial_merge_size)
    resolution = resolution if resolution is not None else ResolutionConfig(image_aspect_ratio="native")
    if resolution.merge_size not in (1, merge):
        raise BioresConfigError(
            f"--merge_size {resolution.merge_size} does not match the checkpoint's spatial_merge_size {merge}"
        )
    if resolution.patch_size not in (None, patch):
        raise BioresConfigError(f"--patch_size {resolution.patch_size} does not match the checkpoint's {patch}")
    resolution = ResolutionConfig.from_dict({**resolution.to_dict(), "merge_size": merge}).resolved(patch)
    model_cls = AutoModelForImageTextToText._model_mapping[type(config)]
    load_kwargs.setdefault("dtype", torch.float32)
    model, info = model_cls.from_pretrained(path, output_loading_info=True, **load_kwargs)
    check_loading_info(info, path)
    processor = QwenVLTrainProcessor(AutoProcessor.from_pretrained(path), resolution)
    model.config.biores = resolution.to_dict()
    return model, processor
