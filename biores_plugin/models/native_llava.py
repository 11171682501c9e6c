"""Native-resolution LLaVA on transformers: :class:`BioresLlavaProcessor` and the model.

Each ``<image>`` expands to that image's own visual-token count; the model's
``get_image_features`` also takes a list of differently sized images and encodes them in one
packed pass. The policy is saved with the checkpoint (``biores_config.json``). docs/native_llava.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from transformers import AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration, PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.llava.modeling_llava import LlavaModel

from ..errors import BioresConfigError
from ..io_utils import atomic_write_text
from ..processing import BioresNativeImageProcessor
from ..resolution import DownsamplePolicy, NativePolicy, ResolutionConfig, apply_policy
from .checkpoint import check_loading_info
from .counting import Encoded, per_sample

PROCESSOR_CONFIG = "biores_processor.json"


def _register_key_renaming() -> None:
    """Give ``BioresLlavaModel`` the ``LlavaModel`` key-renaming rule (the rule is keyed on the
    class name), so the legacy ``language_model.model.*`` layout of llava-hf checkpoints loads.
    Done when a checkpoint is loaded (never at import): transformers' table changes only for
    biores' own class names."""
    from ..versions import check_version

    check_version("transformers", "loading LLaVA checkpoints (the key-renaming table)")
    from transformers import conversion_mapping as cm

    for ours, theirs in (("BioresLlavaModel", "LlavaModel"), ("BioresLlavaForConditionalGeneration", "llava")):
        rule = cm.get_checkpoint_conversion_mapping(theirs)
        if rule and cm.get_checkpoint_conversion_mapping(ours) is None:
            cm.register_checkpoint_conversion_mapping(ours, rule)


# --------------------------------------------------------------------------- model


class BioresMergeProjector(nn.Module):
    """Projector after a 2x2 token merge: LayerNorm(4D) -> Linear -> GELU -> Linear."""

    def __init__(self, vision_hidden: int, text_hidden: int, merge_size: int = 2):
        super().__init__()
        width = vision_hidden * merge_size * merge_size
        self.norm = nn.LayerNorm(width)
        self.linear_1 = nn.Linear(width, text_hidden)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(text_hidden, text_hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(self.norm(features))))


def resolution_of(config: LlavaConfig) -> ResolutionConfig:
    data = getattr(config, "biores", None)
    resolution = ResolutionConfig.from_dict(data) if data else ResolutionConfig(image_aspect_ratio="pad")
    return resolution if resolution.patch_size else resolution.resolved(int(config.vision_config.patch_size))


class BioresLlavaModel(LlavaModel):
    """``LlavaModel`` whose image features accept a list of differently sized images."""

    def __init__(self, config: LlavaConfig):
        super().__init__(config)
        res = resolution_of(config)
        self.merge_size = int(res.merge_size)
        if self.merge_size > 1:
            self.multi_modal_projector = BioresMergeProjector(
                config.vision_config.hidden_size, config.text_config.hidden_size, self.merge_size
            )
        self.vision_backend = "auto"

    def get_image_features(
        self,
        pixel_values: Any,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        image_sizes: Any = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        if pixel_values is None or (isinstance(pixel_values, (list, tuple)) and not pixel_values):  # text-only
            return BaseModelOutputWithPooling(last_hidden_state=None, pooler_output=[])
        if isinstance(pixel_values, torch.Tensor) and self.merge_size == 1:
            return super().get_image_features(
                pixel_values=pixel_values,
                vision_feature_layer=vision_feature_layer,
                vision_feature_select_strategy=vision_feature_select_strategy,
                image_sizes=image_sizes,
                **kwargs,
            )
        from ..vision import encode_packed, merge_2x2

        layer = self.config.vision_feature_layer if vision_feature_layer is None else vision_feature_layer
        strategy = vision_feature_select_strategy or self.config.vision_feature_select_strategy
        if not isinstance(layer, int):
            raise BioresConfigError("native-resolution LLaVA supports one vision_feature_layer (an int)")
        images = list(pixel_values)
        dtype = next(self.vision_tower.parameters()).dtype
        channels = int(getattr(self.config.vision_config, "num_channels", 3))
        if channels == 1:  # grayscale towers (microscopy): the processor's RGB -> luminance mean
            images = [img.mean(0, keepdim=True) if img.shape[0] == 3 else img for img in images]
        images = [img.to(dtype) for img in images]
        packed = encode_packed(
            self.vision_tower,
            images,
            feature_layer=layer,
            select="patch" if strategy == "default" or self.merge_size > 1 else "cls_patch",
            backend=self.vision_backend,
        )
        features, grids = packed.features, packed.grid_hw
        if self.merge_size > 1:
            features, grids = merge_2x2(features, grids)
        projected = self.multi_modal_projector(features)
        counts = [
            int(h) * int(w)
            + (1 if strategy != "default" and self.merge_size == 1 and _has_cls(self.vision_tower) else 0)
            for h, w in grids
        ]
        per_image = list(torch.split(projected, counts))
        return BaseModelOutputWithPooling(last_hidden_state=features.unsqueeze(0), pooler_output=per_image)


def _has_cls(tower: nn.Module) -> bool:
    return hasattr(getattr(getattr(tower, "vision_model", tower), "embeddings", None), "class_embedding")


class BioresLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """``LlavaForConditionalGeneration`` that runs at native resolution (see module doc)."""

    def __init__(self, config: LlavaConfig):
        super().__init__(config)
        if not isinstance(self.model, BioresLlavaModel):
            self.model = BioresLlavaModel(config)
            self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any):
        """``from_pretrained`` of stock LLaVA-1.5 folders (legacy or current key layout) and biores'
        own; any missing, unexpected or mismatched weight is a one-line :class:`BioresConfigError`."""
        _register_key_renaming()
        want_info = bool(kwargs.pop("output_loading_info", False))
        config = kwargs.get("config")
        if config is None and Path(str(pretrained_model_name_or_path)).is_dir():
            raw = json.loads((Path(pretrained_model_name_or_path) / "config.json").read_text())
            if raw.get("model_type") != "llava":
                raise BioresConfigError(
                    f"{pretrained_model_name_or_path} is a {raw.get('model_type')!r} checkpoint, not LLaVA-1.5 style; "
                    "biores_llava runs it with its own transformers classes"
                )
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        check_loading_info(info, pretrained_model_name_or_path)
        return (model, info) if want_info else model

    @property
    def resolution(self) -> ResolutionConfig:
        return resolution_of(self.config)

    def set_vision_backend(self, backend: str) -> None:
        """Attention backend of the packed vision pass (``auto``, ``sdpa_segments``, ...)."""
        self.model.vision_backend = backend


# --------------------------------------------------------------------------- processor


class BioresLlavaProcessor:
    """Tokenizer + native image processor + resolution policy, LLaVA-style prompts.

    ``processor(text=[...], images=[[img, ...], ...])`` -> ``input_ids``, ``attention_mask``,
    ``pixel_values`` (list of ``[3, H, W]``), ``image_grid_hw``, ``num_visual_tokens``.
    """

    image_token = "<image>"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        resolution: ResolutionConfig,
        *,
        image_mean=None,
        image_std=None,
        image_placement: str = "before",
        stock_image_processor: Any = None,
        extra_image_tokens: int = 0,
    ):
        """``stock_image_processor``: a checkpoint's own image processor (its resize/crop), used
        instead of the policy; each image then gives ``grid + extra_image_tokens`` tokens."""
        self.stock_image_processor = stock_image_processor
        self.extra_image_tokens = int(extra_image_tokens)
        if image_placement not in ("before", "after"):
            raise BioresConfigError(f"image_placement must be 'before' or 'after', got {image_placement!r}")
        self.image_placement = image_placement
        self.tokenizer = tokenizer
        self.resolution = resolution
        if resolution.image_aspect_ratio.lower().startswith("anyres"):
            raise BioresConfigError(
                "biores_llava runs native, downsample or fixed (pad/crop/stretch) policies; for anyres use a "
                "LLaVA-NeXT checkpoint with lmms-eval's llava_hf / llava_onevision"
            )
        self.policy = resolution.policy()
        extra = {}
        if image_mean is not None:
            extra.update(image_mean=list(image_mean), image_std=list(image_std))
        native = self.policy.then if isinstance(self.policy, DownsamplePolicy) else self.policy
        if not isinstance(native, NativePolicy):  # fixed square: squared here, then resized exactly to size x size
            side = native.size
            native = NativePolicy(native.patch_size, resolution.merge_size, side * side, side * side)
        self.image_processor = BioresNativeImageProcessor.from_policy(native, **extra)
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise BioresConfigError(f"the tokenizer has no {self.image_token} token")

    # -- images

    def prepare_image(self, image: Image.Image) -> Image.Image:
        """Apply the policy's geometry that happens before the processor (cap, square)."""
        return apply_policy(image, self.policy, fill=self.image_processor.image_mean)

    def process_images(self, images: Sequence[Any]) -> dict[str, Any]:
        from ..image_io import load_image

        loaded = [load_image(image, copy=False) for image in images]  # checked: truncation, modes, 16-bit
        if loaded and self.stock_image_processor is not None:  # the checkpoint's own policy
            pixels = self.stock_image_processor(loaded, return_tensors="pt")["pixel_values"]
            patch = int(self.resolution.patch_size)
            grid = torch.tensor(
                [[pixels.shape[-2] // patch, pixels.shape[-1] // patch]] * len(loaded), dtype=torch.long
            )
            counts = grid.prod(-1) + self.extra_image_tokens
            return {"pixel_values": pixels, "num_visual_tokens": counts, "image_grid_hw": grid}
        prepared = [self.prepare_image(image) for image in loaded]
        return (
            self.image_processor(prepared)
            if prepared
            else {
                "pixel_values": [],
                "num_visual_tokens": torch.zeros(0, dtype=torch.long),
                "image_grid_hw": torch.zeros(0, 2, dtype=torch.long),
            }
        )

    def visual_tokens(self, image: Image.Image) -> int:
        return int(self.policy.visual_tokens(*image.size))

    # -- text

    def build_prompt(self, text: str, n_images: int) -> str:
        """The prompt the model is trained and evaluated with: one ``<image>`` per image. With a chat
        template, the images go in as structured ``{"type": "image"}`` parts (as llava-hf's and
        Qwen's templates expect); a template that renders no image part gets them inline."""
        present = text.count(self.image_token)
        if present not in (0, n_images):
            raise BioresConfigError(f"prompt has {present} {self.image_token} placeholders for {n_images} images")
        template = getattr(self.tokenizer, "chat_template", None)
        if template and present == 0:
            parts = [{"type": "image"} for _ in range(n_images)]
            parts.insert(len(parts) if self.image_placement == "before" else 0, {"type": "text", "text": text})
            rendered = self._render([{"role": "user", "content": parts}], inline_follows=True)
            if rendered is not None and rendered.count(self.image_token) == n_images:
                return rendered
        if present == n_images:
            body = text
        elif self.image_placement == "after":  # question first, then the image
            body = text + (" " if n_images else "") + self.image_token * n_images
        else:
            body = self.image_token * n_images + ("\n" if n_images else "") + text
        if template:
            rendered = self._render([{"role": "user", "content": body}])
            if rendered.count(self.image_token) != n_images:
                raise BioresConfigError(
                    f"the chat template renders {rendered.count(self.image_token)} {self.image_token} placeholders for "
                    f"{n_images} images"
                )
            return rendered
        return body

    def _render(self, messages: list[dict], *, inline_follows: bool = False) -> str | None:
        """The rendered chat prompt; a template that fails is a one-line :class:`BioresConfigError`, except
        for structured content when the inline form is tried next (``None``: a template for plain strings)."""
        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # noqa: BLE001 - jinja: TemplateError, TypeError, KeyError, ...
            if inline_follows:
                return None
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise BioresConfigError(
                f"the tokenizer's chat template cannot render this prompt ({type(exc).__name__}: {first}); "
                "fix the template or pass a model without one"
            ) from None

    def expand_prompt(self, text: str, counts: Sequence[int]) -> str:
        """Each ``<image>`` -> that image's visual tokens, contiguous (no separators: a byte-level
        BPE tokenizer would emit a space token between them)."""
        parts = text.split(self.image_token)
        if len(parts) - 1 != len(counts):
            raise BioresConfigError(
                f"prompt has {len(parts) - 1} {self.image_token} placeholders for {len(counts)} images"
            )
        return parts[0] + "".join(self.image_token * count + part for count, part in zip(counts, parts[1:]))

    def __call__(
        self,
        text: str | Sequence[str],
        images: Sequence[Any] | Sequence[Sequence[Any]] | None = None,
        *,
        padding_side: str = "left",
        return_tensors: str = "pt",
    ) -> dict[str, Any]:
        texts = [text] if isinstance(text, str) else list(text)
        if images is None:
            per_sample: list[list[Any]] = [[] for _ in texts]
        elif texts and len(texts) == 1 and images and not isinstance(images[0], (list, tuple)):
            per_sample = [list(images)]
        else:
            per_sample = [list(x) if isinstance(x, (list, tuple)) else [x] for x in images]
        if len(per_sample) != len(texts):
            raise BioresConfigError(f"{len(texts)} prompts but {len(per_sample)} image lists")
        flat = [img for sample in per_sample for img in sample]
        processed = self.process_images(flat)
        counts = [int(c) for c in processed["num_visual_tokens"]]
        expanded, cursor = [], 0
        for prompt, sample in zip(texts, per_sample):
            expanded.append(self.expand_prompt(prompt, counts[cursor : cursor + len(sample)]))
            cursor += len(sample)
        self.tokenizer.padding_side = padding_side
        encoded = self.tokenizer(expanded, padding=True, return_tensors=return_tensors, add_special_tokens=True)
        return {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "pixel_values": processed["pixel_values"]
            if torch.is_tensor(processed["pixel_values"])
            else list(processed["pixel_values"]),
            "image_grid_hw": processed["image_grid_hw"],
            "num_visual_tokens": processed["num_visual_tokens"],
            "visual_tokens_per_sample": [sum(counts[i] for i in range(a, a + len(s))) for a, s in _offsets(per_sample)],
        }

    def encode(self, texts: Sequence[str], images: Sequence[Sequence[Any]], *, padding_side: str = "left") -> Encoded:
        """Model inputs, visual tokens per sample and the tower's ``(width, height)`` per image
        (the interface every processor of :func:`biores_plugin.models.load` has)."""
        batch = self(list(texts), [list(sample) for sample in images], padding_side=padding_side)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        pixels = batch["pixel_values"]
        if len(pixels):
            inputs["pixel_values"] = pixels
        shapes = [(int(p.shape[-1]), int(p.shape[-2])) for p in pixels]
        return Encoded(inputs, [int(v) for v in batch["visual_tokens_per_sample"]], per_sample(shapes, images))

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    # -- persistence (transformers habits)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(directory)
        self.image_processor.save_pretrained(directory)
        self.resolution.save_pretrained(directory)
        atomic_write_text(
            directory / PROCESSOR_CONFIG,
            json.dumps({"processor_class": type(self).__name__, "image_placement": self.image_placement}, indent=2)
            + "\n",
        )

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides: Any) -> BioresLlavaProcessor:
        """Load tokenizer, image normalisation and policy; ``overrides`` replace policy fields
        (``image_aspect_ratio``, ``min_pixels``, ``max_pixels``, ``merge_size``...)."""
        directory = Path(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        saved = ResolutionConfig.from_pretrained(directory)
        model_config = (
            json.loads((directory / "config.json").read_text()) if (directory / "config.json").is_file() else {}
        )
        resolution = saved or ResolutionConfig()
        vision = model_config.get("vision_config") or {}
        if resolution.patch_size is None:  # the tower's own patch size (its config's default when unsaved)
            from transformers import AutoConfig

            resolution = resolution.resolved(int(AutoConfig.from_pretrained(directory).vision_config.patch_size))
        given = {k: v for k, v in overrides.items() if v is not None}
        values = resolution.to_dict()
        values.update(given)
        placement = "before"
        if (directory / PROCESSOR_CONFIG).is_file():
            placement = json.loads((directory / PROCESSOR_CONFIG).read_text()).get("image_placement", "before")
        image_config = _image_processor_config(directory)
        mean, std = image_config.get("image_mean"), image_config.get("image_std")
        stock = extra = None
        if saved is None and not given and image_config:  # a stock checkpoint: its own processor's policy
            from transformers import AutoImageProcessor

            stock = AutoImageProcessor.from_pretrained(directory)
            proc = _processor_config(directory)
            strategy = proc.get("vision_feature_select_strategy") or model_config.get(
                "vision_feature_select_strategy", "default"
            )
            extra = int(
                proc.get(
                    "num_additional_image_tokens",
                    1 if vision.get("model_type", "clip_vision_model") == "clip_vision_model" else 0,
                )
            )
            extra -= 1 if strategy == "default" else 0
        return cls(
            tokenizer,
            ResolutionConfig.from_dict(values),
            image_mean=mean,
            image_std=std,
            image_placement=placement,
            stock_image_processor=stock,
            extra_image_tokens=extra or 0,
        )


def _processor_config(directory: Path) -> dict:
    file = directory / "processor_config.json"
    return json.loads(file.read_text()) if file.is_file() else {}


def _image_processor_config(directory: Path) -> dict:
    """The image processor's settings from ``preprocessor_config.json`` (transformers 4) or the
    ``image_processor`` entry of ``processor_config.json`` (transformers 5)."""
    file = directory / "preprocessor_config.json"
    if file.is_file():
        return json.loads(file.read_text())
    return _processor_config(directory).get("image_processor") or {}


def _offsets(per_sample: Sequence[Sequence[Any]]):
    start = 0
    for sample in per_sample:
        yield start, sample
        start += len(sample)
