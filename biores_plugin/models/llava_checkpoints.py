"""LLaVA-1.5-style checkpoints (``model_type`` ``llava``): stock llava-hf folders and biores' own,
loaded into the native-resolution class for evaluation and training.

A stock folder (``LlavaForConditionalGeneration`` + ``LlavaProcessor``, no token merge) stays one
when trained: :class:`ComposedLlavaProcessor` prompts as ``LlavaProcessor`` does and
``biores-train`` saves it back in the stock layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import BioresConfigError
from .native_llava import BioresLlavaForConditionalGeneration, BioresLlavaProcessor


class ComposedLlavaProcessor(BioresLlavaProcessor):
    """Training-side processor of a composed LLaVA: image tokens expand with no separator, as
    ``LlavaProcessor`` expands them (a byte-level BPE would add a space token between them)."""

    def build_prompt(self, text: str, n_images: int) -> str:
        """The chat template rendered with structured content (``{"type": "image"}`` parts), as
        lmms-eval's chat ``llava_hf`` renders it, plus the BOS a tokenizer adds on its own (the
        stock ``LlavaProcessor`` gets it at evaluation; training tokenizes without specials)."""
        if not getattr(self.tokenizer, "chat_template", None):
            return super().build_prompt(text, n_images)
        present = text.count(self.image_token)
        if present not in (0, n_images):
            raise BioresConfigError(f"prompt has {present} {self.image_token} placeholders for {n_images} images")
        if present == 0:
            pieces: list = (
                [None] * n_images + [text] if self.image_placement == "before" else [text] + [None] * n_images
            )
        else:
            pieces = []
            for i, chunk in enumerate(text.split(self.image_token)):
                if i:
                    pieces.append(None)
                    chunk = chunk.lstrip("\n")
                if chunk.strip():
                    pieces.append(chunk)
        content = [{"type": "image"} if p is None else {"type": "text", "text": p} for p in pieces]
        prompt = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        if prompt.count(self.image_token) != n_images:
            raise BioresConfigError(
                f"the chat template renders {prompt.count(self.image_token)} {self.image_token} for {n_images} images"
            )
        bos = self.tokenizer.bos_token
        if bos and not prompt.startswith(bos) and self.tokenizer("x")["input_ids"][:1] == [self.tokenizer.bos_token_id]:
            prompt = bos + prompt
        return prompt

    def expand_prompt(self, text: str, counts: Sequence[int]) -> str:
        parts = text.split(self.image_token)
        if len(parts) - 1 != len(counts):
            raise BioresConfigError(
                f"prompt has {len(parts) - 1} {self.image_token} placeholders for {len(counts)} images"
            )
        return parts[0] + "".join(self.image_token * count + part for count, part in zip(counts, parts[1:]))


def tower_sized(resolution: Any, vision_config: Any) -> Any:
    """Fixed policies (pad, crop, stretch) at the tower's own size, as LLaVA's image processor."""
    if resolution.image_aspect_ratio in ("pad", "crop", "stretch") and resolution.image_size != int(
        vision_config.image_size
    ):
        return type(resolution).from_dict({**resolution.to_dict(), "image_size": int(vision_config.image_size)})
    return resolution


def stock_llava(path: str | Path) -> bool:
    """Whether ``path`` is a stock HF LLaVA (``LlavaForConditionalGeneration`` + ``LlavaProcessor``,
    no token merge), read from its JSON files."""
    config = json.loads((Path(path) / "config.json").read_text())
    processor = Path(path) / "processor_config.json"
    named = processor.is_file() and json.loads(processor.read_text()).get("processor_class") == "LlavaProcessor"
    merge = int((config.get("biores") or {}).get("merge_size", 1) or 1)
    return config.get("architectures") == ["LlavaForConditionalGeneration"] and named and merge == 1


def load_stock_llava(path: str | Path, **kwargs: Any) -> Any:
    """A stock LLaVA folder (legacy ``language_model.model.*`` or current key layout) loaded by
    ``LlavaForConditionalGeneration`` itself, its modules moved into the native-resolution class."""
    from transformers import LlavaForConditionalGeneration

    kwargs.setdefault("dtype", torch.float32)
    stock, info = LlavaForConditionalGeneration.from_pretrained(path, output_loading_info=True, **kwargs)
    if info["missing_keys"] or info["mismatched_keys"]:
        missing = sorted(info["missing_keys"]) + [str(m) for m in info["mismatched_keys"]]
        raise BioresConfigError(
            f"--model_name_or_path {path}: {len(missing)} weights missing or mismatched when loading (e.g. "
            f"{missing[0]})"
        )
    with torch.device("meta"):
        model = BioresLlavaForConditionalGeneration(stock.config)
    for name in ("language_model", "vision_tower", "multi_modal_projector"):
        setattr(model.model, name, getattr(stock.model, name))
    model.lm_head = stock.lm_head
    model.generation_config = stock.generation_config
    return model


def stock_training_processor(path: str | Path, base: Any, resolution: Any) -> ComposedLlavaProcessor:
    """The training processor of a stock LLaVA folder: its tokenizer and image normalisation."""
    from transformers import AutoConfig, AutoImageProcessor

    image_processor = AutoImageProcessor.from_pretrained(path)
    resolution = tower_sized(resolution, AutoConfig.from_pretrained(path).vision_config)
    processor = ComposedLlavaProcessor(
        base.tokenizer,
        resolution,
        image_mean=image_processor.image_mean,
        image_std=image_processor.image_std,
        image_placement=base.image_placement,
    )
    processor.tower_path = str(path)
    return processor


def load_llava(
    path: str | Path,
    resolution: Any = None,
    *,
    training: bool = False,
    vision_backend: str = "auto",
    **load_kwargs: Any,
) -> tuple[Any, Any]:
    """Evaluation: biores' native-resolution model and processor, ``resolution`` a mapping of
    policy overrides (None: the checkpoint's). Training: a stock folder keeps its stock processor;
    ``resolution`` is the run's ResolutionConfig (patch size: the tower's when left out)."""
    if not training:
        model = BioresLlavaForConditionalGeneration.from_pretrained(path, **load_kwargs).eval()
        processor = BioresLlavaProcessor.from_pretrained(path, **dict(resolution or {}))
        if processor.resolution.merge_size != model.model.merge_size:
            raise BioresConfigError(
                f"merge_size={processor.resolution.merge_size} does not match the checkpoint's {model.model.merge_size}"
            )
        model.set_vision_backend(vision_backend)
        return model, processor
    stock = stock_llava(path)
    if stock:
        model = load_stock_llava(path, **load_kwargs)
    else:
        model = BioresLlavaForConditionalGeneration.from_pretrained(path, **load_kwargs)
    from ..resolution import ResolutionConfig

    resolution = resolution if resolution is not None else ResolutionConfig()
    resolution = resolution.resolved(resolution.patch_size or int(model.config.vision_config.patch_size))
    if resolution.merge_size != model.model.merge_size:
        raise BioresConfigError(
            f"--merge_size {resolution.merge_size} does not match the checkpoint's {model.model.merge_size}"
        )
    base = BioresLlavaProcessor.from_pretrained(path)
    if stock:  # a stock checkpoint stays one: LlavaProcessor prompts, stock save
        processor = stock_training_processor(path, base, resolution)
    else:
        processor = BioresLlavaProcessor(
            base.tokenizer,
            resolution,
            image_mean=base.image_processor.image_mean,
            image_std=base.image_processor.image_std,
            image_placement=base.image_placement,
        )
    model.config.biores = processor.resolution.to_dict()
    model.set_vision_backend(vision_backend)
    return model, processor
