"""``biores-train``'s flags: LLaVA's ``ModelArguments`` / ``DataArguments`` / ``TrainingArguments``.

``DataArguments`` holds the resolution flags as LLaVA's does (it extends the shared
:class:`~biores_plugin.resolution.ResolutionConfig`), so every value is checked while the
command line is parsed, before any data or model loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional, Sequence

import transformers

from ..errors import BioresConfigError
from ..resolution import ResolutionConfig
from .towers import pretrained_tower_config


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
class DataArguments(ResolutionConfig):
    """LLaVA's data flags plus the shared resolution flags (``image_aspect_ratio``, ``min_pixels``, ...)."""

    data_path: Optional[str] = field(default=None, metadata={"help": "LLaVA conversation JSON, or a biores synth folder (synth:DIR or DIR with meta.json)"})
    image_folder: Optional[str] = field(default=None)
    image_grid_pinpoints: Optional[str] = field(default=None)
    mm_patch_merge_type: str = field(default="flat")
    answer_loss_weights: Optional[str] = field(default=None, metadata={"help": "loss weight per question type, e.g. fine=3,coarse=1"})
    max_samples: Optional[int] = field(default=None)
    mixed_schedule: str = field(default="draw", metadata={"help": "how --mixed_resolution reaches the batches: draw, dataset, balanced or paired (train/mixing.py)"})
    mixed_loss_normalization: str = field(default="token", metadata={"help": "token (one mean over answer tokens) or per_resolution"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if str(self.image_aspect_ratio).lower().startswith("anyres"):
            raise BioresConfigError("biores-train trains native, downsample and fixed policies; anyres training needs LLaVA-NeXT")
        if self.merge_size not in (1, 2):
            raise BioresConfigError(f"--merge_size must be 1 or 2, got {self.merge_size}")
        parse_loss_weights(self.answer_loss_weights)
        from .mixing import check_schedule

        check_schedule(self.mixed_schedule, self.mixed_loss_normalization)

    def resolution(self, patch_size: int) -> ResolutionConfig:
        """The checkpoint's resolution config for a tower with ``patch_size`` (one-line errors)."""
        return ResolutionConfig.from_flags(self).resolved(self.patch_size or patch_size)


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    group_by_token_count: bool = field(default=True, metadata={"help": "batch samples of similar total token count"})
    model_max_length: int = field(default=2048)
    remove_unused_columns: bool = field(default=False)


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
    if model_args.model_name_or_path == "tiny":
        pretrained_tower_config(model_args.vision_tower)  # a tower kind or a saved tower folder
    return model_args, data_args, training_args
