"""Training flags: LLaVA's names (``ModelArguments`` / ``DataArguments`` / ``TrainingArguments``)
plus biores' resolution flags, validated before any model loads.

New flags: ``--image_aspect_ratio native``, ``--min_pixels``, ``--max_pixels``, ``--merge_size``,
``--mixed_resolution native:0.5,448:0.25,224:0.25`` (each training sample is drawn, seeded and
reproducibly, at one of those resolutions), ``--answer_loss_weights fine=3``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import transformers

from ..configuration import ResolutionConfig
from ..errors import BioresConfigError
from ..lmms_tasks import NATIVE, parse_resolution, resolution_label


@dataclass
class ModelArguments:
    model_name_or_path: str = field(default="tiny", metadata={"help": "a biores/HF LLaVA checkpoint folder, or 'tiny' to build one from local configs"})
    version: str = field(default="plain", metadata={"help": "conversation template (plain: '<image> question' -> answer)"})
    vision_tower: Optional[str] = field(default=None, metadata={"help": "for --model_name_or_path tiny: siglip or clip (random), or a saved tower folder (biores-pretrain-vision)"})
    mm_projector_type: str = field(default="mlp2x_gelu", metadata={"help": "mlp2x_gelu (LLaVA's), with LayerNorm when merge_size > 1"})
    tune_mm_mlp_adapter: bool = field(default=False, metadata={"help": "train only the projector (LLaVA pretraining stage)"})
    freeze_vision_tower: bool = field(default=False)
    mm_vision_tower_lr: Optional[float] = field(default=None, metadata={"help": "learning rate of the vision tower (default: --learning_rate)"})
    tiny_config: Optional[str] = field(default=None, metadata={"help": "JSON overrides for the tiny model (vision_hidden, text_layers, ...)"})
    attn_implementation: Optional[str] = field(default=None)
    vision_backend: str = field(default="auto", metadata={"help": "packed vision attention backend"})
    image_placement: str = field(default="before", metadata={"help": "where a prompt without <image> gets its image tokens: before or after the text"})
    init: str = field(default="torch", metadata={"help": "for tiny models: 'torch' (PyTorch module defaults) or 'hf' (transformers' N(0, 0.02))"})


@dataclass
class DataArguments:
    data_path: Optional[str] = field(default=None, metadata={"help": "LLaVA conversation JSON, or a biores synth folder (synth:DIR or DIR with meta.json)"})
    image_folder: Optional[str] = field(default=None)
    image_aspect_ratio: str = field(default="native", metadata={"help": "square, pad, native, or a longest side (448)"})
    image_grid_pinpoints: Optional[str] = field(default=None)
    mm_patch_merge_type: str = field(default="flat")
    min_pixels: Optional[int] = field(default=None)
    max_pixels: Optional[int] = field(default=None)
    patch_size: Optional[int] = field(default=None, metadata={"help": "default: the vision tower's"})
    merge_size: int = field(default=1, metadata={"help": "2 = 2x2 token merge after the tower"})
    image_size: int = field(default=336, metadata={"help": "fixed / anyres base size"})
    mixed_resolution: Optional[str] = field(default=None, metadata={"help": "e.g. native:0.5,448:0.25,224:0.25"})
    train_resolution_label: Optional[str] = field(default=None, metadata={"help": "what reports call this model's training resolution"})
    answer_loss_weights: Optional[str] = field(default=None, metadata={"help": "loss weight per question type, e.g. fine=3,coarse=1"})
    max_samples: Optional[int] = field(default=None)


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    group_by_token_count: bool = field(default=True, metadata={"help": "batch samples of similar total token count"})
    model_max_length: int = field(default=2048)
    remove_unused_columns: bool = field(default=False)


def parse_mixed_resolution(spec: Optional[str]) -> list[tuple[int, float]]:
    """``"native:0.5,448:0.25,224:0.25"`` -> ``[(0, .5), (448, .25), (224, .25)]`` (0 = native)."""
    if spec is None or not str(spec).strip():
        return [(NATIVE, 1.0)]
    pairs: list[tuple[int, float]] = []
    for item in str(spec).split(","):
        if ":" not in item:
            raise BioresConfigError(f"--mixed_resolution entries look like RES:PROB (e.g. native:0.5), got {item!r}")
        res, prob = item.rsplit(":", 1)
        try:
            p = float(prob)
        except ValueError:
            raise BioresConfigError(f"--mixed_resolution probability must be a number, got {prob!r}") from None
        if not 0 < p <= 1:
            raise BioresConfigError(f"--mixed_resolution probabilities must be in (0, 1], got {p}")
        value = parse_resolution(res)
        if any(value == v for v, _ in pairs):
            raise BioresConfigError(f"--mixed_resolution lists {res} twice")
        pairs.append((value, p))
    total = sum(p for _, p in pairs)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise BioresConfigError(f"--mixed_resolution probabilities sum to {total:g}, not 1")
    return pairs


def mixed_label(pairs: Sequence[tuple[int, float]]) -> str:
    if len(pairs) == 1:
        return resolution_label(pairs[0][0])
    return "mixed(" + ",".join(f"{resolution_label(r)}:{p:g}" for r, p in pairs) + ")"


def parse_loss_weights(spec: Optional[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise BioresConfigError(f"--answer_loss_weights entries look like TYPE=WEIGHT, got {item!r}")
        key, value = item.split("=", 1)
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            raise BioresConfigError(f"--answer_loss_weights weight must be a number, got {value!r}") from None
        if weights[key.strip()] <= 0:
            raise BioresConfigError("--answer_loss_weights must be positive")
    return weights


def resolution_config(data: DataArguments, patch_size: int) -> ResolutionConfig:
    """The checkpoint's resolution config from the flags (raises one-line errors)."""
    pairs = parse_mixed_resolution(data.mixed_resolution)
    text = str(data.image_aspect_ratio).lower()
    native_like = text == "native" or text[:1].isdigit()
    if (data.min_pixels is not None or data.max_pixels is not None) and not native_like:
        raise BioresConfigError(f"--min_pixels/--max_pixels need --image_aspect_ratio native, got {data.image_aspect_ratio!r}")
    if data.mixed_resolution and not native_like:
        raise BioresConfigError("--mixed_resolution needs --image_aspect_ratio native (the model must accept any size)")
    if text.startswith("anyres"):
        raise BioresConfigError("biores-train trains native, downsample and fixed policies; anyres training needs LLaVA-NeXT")
    if data.merge_size not in (1, 2):
        raise BioresConfigError(f"--merge_size must be 1 or 2, got {data.merge_size}")
    options: dict[str, Any] = dict(
        image_aspect_ratio=data.image_aspect_ratio,
        patch_size=patch_size,
        merge_size=data.merge_size,
        image_size=data.image_size,
        mixed_resolution=data.mixed_resolution,
        train_resolution_label=data.train_resolution_label or mixed_label(pairs),
    )
    if data.min_pixels is not None:
        options["min_pixels"] = data.min_pixels
    if data.max_pixels is not None:
        options["max_pixels"] = data.max_pixels
    if native_like:
        options.setdefault("min_pixels", (patch_size * data.merge_size) ** 2)
        options.setdefault("max_pixels", 1280 * (patch_size * data.merge_size) ** 2)
    config = ResolutionConfig(**options)
    config.policy()
    return config


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    import os
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not any(a.startswith("--ddp_backend") for a in argv):
        import torch

        if not torch.cuda.is_available():  # CPU DDP (accelerate launch / torchrun): gloo, not nccl
            argv += ["--ddp_backend", "gloo"]
    parser = transformers.HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    model_args, data_args, training_args, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        raise BioresConfigError(f"unknown flag(s): {' '.join(unknown)}")
    if not data_args.data_path:
        raise BioresConfigError("--data_path is required (LLaVA JSON or a biores synth folder)")
    if model_args.tiny_config:
        try:
            json.loads(model_args.tiny_config)
        except json.JSONDecodeError as exc:
            raise BioresConfigError(f"--tiny_config is not valid JSON: {exc.msg}") from None
    parse_loss_weights(data_args.answer_loss_weights)
    parse_mixed_resolution(data_args.mixed_resolution)
    resolution_config(data_args, int(data_args.patch_size or 16))  # policy errors before any data loads
    if model_args.model_name_or_path == "tiny":
        from .trainer import pretrained_tower_config

        pretrained_tower_config(model_args.vision_tower)  # a tower kind or a saved tower folder
    return model_args, data_args, training_args
