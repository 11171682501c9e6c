"""``biores-train``'s flags: LLaVA's ``ModelArguments`` / ``DataArguments`` / ``TrainingArguments``.

``DataArguments`` holds the resolution flags as LLaVA's does (it extends the shared
:class:`~biores_plugin.resolution.ResolutionConfig`), so every value is checked while the
command line is parsed, before any data or model loads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import transformers

from ..errors import BioresConfigError
from ..models import checkpoint_kind
from ..resolution import ResolutionConfig
from .checks import check_tiny_config, check_training_flags
from .data import cache_bytes
from .towers import pretrained_tower_config


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="tiny",
        metadata={
            "help": "a LLaVA or Qwen2-VL family checkpoint folder, a language model folder (with --vision_tower), or "
            "'tiny'"
        },
    )
    version: str = field(
        default="plain",
        metadata={
            "help": "conversation template: plain, v1, llama_3, qwen_2 (LLaVA's) or template (the tokenizer's chat "
            "template)"
        },
    )
    vision_tower: Optional[str] = field(
        default=None, metadata={"help": "a CLIP/SigLIP tower folder; for 'tiny' also siglip or clip (random)"}
    )
    mm_vision_select_layer: Optional[int] = field(
        default=None, metadata={"help": "tower layer the projector reads (LLaVA's; default -2 when composing)"}
    )
    pretrain_mm_mlp_adapter: Optional[str] = field(
        default=None, metadata={"help": "stage 2: the mm_projector.bin stage 1 wrote"}
    )
    mm_projector_type: str = field(
        default="mlp2x_gelu", metadata={"help": "mlp2x_gelu (LLaVA's), with LayerNorm when merge_size > 1"}
    )
    tune_mm_mlp_adapter: bool = field(
        default=False, metadata={"help": "train only the projector (LLaVA pretraining stage)"}
    )
    freeze_vision_tower: bool = field(default=False)
    mm_vision_tower_lr: Optional[float] = field(
        default=None, metadata={"help": "learning rate of the vision tower (default: --learning_rate)"}
    )
    tiny_config: Optional[str] = field(
        default=None, metadata={"help": "JSON overrides for the tiny model (vision_hidden, text_layers, ...)"}
    )
    attn_implementation: Optional[str] = field(default=None)
    vision_backend: str = field(default="auto", metadata={"help": "packed vision attention backend"})
    image_placement: str = field(
        default="before",
        metadata={"help": "where a prompt without <image> gets its image tokens: before or after the text"},
    )
    torch_dtype: str = field(
        default="float32",
        metadata={"help": "dtype of the trained weights: float32, bfloat16, float16 or auto (the checkpoint's)"},
    )
    init: str = field(
        default="torch",
        metadata={"help": "for tiny models: 'torch' (PyTorch module defaults) or 'hf' (transformers' N(0, 0.02))"},
    )


@dataclass
class DataArguments(ResolutionConfig):
    """LLaVA's data flags plus the shared resolution flags (``image_aspect_ratio``, ``min_pixels``, ...)."""

    data_path: Optional[str] = field(
        default=None,
        metadata={"help": "LLaVA conversation JSON, or a biores synth folder (synth:DIR or DIR with meta.json)"},
    )
    image_folder: Optional[str] = field(default=None)
    image_grid_pinpoints: Optional[str] = field(default=None)
    mm_patch_merge_type: str = field(default="flat")
    answer_loss_weights: Optional[str] = field(
        default=None, metadata={"help": "loss weight per question type, e.g. fine=3,coarse=1"}
    )
    max_samples: Optional[int] = field(default=None)
    mixed_schedule: str = field(
        default="draw",
        metadata={
            "help": "how --mixed_resolution reaches the batches: draw, dataset, balanced or paired (train/mixing.py)"
        },
    )
    mixed_loss_normalization: str = field(
        default="token", metadata={"help": "token (one mean over answer tokens) or per_resolution"}
    )
    sample_cache_mb: float = field(
        default=0.0,
        metadata={
            "help": "keep up to this many MiB of prepared samples in memory, so later epochs skip decoding, "
            "resizing and tokenising (0: off; per dataloader worker)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if str(self.image_aspect_ratio).lower().startswith("anyres"):
            raise BioresConfigError(
                "biores-train trains native, downsample and fixed policies; anyres training needs LLaVA-NeXT"
            )
        if self.merge_size not in (1, 2):
            raise BioresConfigError(f"--merge_size must be 1 or 2, got {self.merge_size}")
        parse_loss_weights(self.answer_loss_weights)
        cache_bytes(self.sample_cache_mb)  # a bad value fails here, before any model loads
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
    lora_enable: bool = field(default=False, metadata={"help": "train LoRA adapters on the language model (peft)"})
    lora_r: int = field(default=64)
    lora_alpha: int = field(default=16)
    lora_dropout: float = field(default=0.05)
    lora_bias: str = field(default="none")
    lora_save: str = field(
        default="merged", metadata={"help": "merged (a plain checkpoint) or adapter (peft adapter files)"}
    )
    max_visual_tokens_per_batch: Optional[int] = field(
        default=None, metadata={"help": "cap on the image tokens of one forward: batches end early to stay under it"}
    )
    pack_sequences: bool = field(
        default=True,
        metadata={
            "help": "padding-free LM batches: a batch's samples in one row with per-sample position ids / cu_seqlens "
            "(same loss as padding)"
        },
    )


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


DS_CONFIGS = Path(__file__).parent / "ds_configs"


def resolve_deepspeed(argv: list[str]) -> list[str]:
    """``--deepspeed zero2|zero3|FILE``: a shipped config by name or a JSON file, and the package
    present, checked before transformers would fail deep inside ``TrainingArguments``."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--deepspeed" or arg.startswith("--deepspeed="):
            value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            path = DS_CONFIGS / f"{value}.json" if (DS_CONFIGS / f"{value}.json").is_file() else Path(value)
            if not path.is_file():
                shipped = ", ".join(sorted(p.stem for p in DS_CONFIGS.glob("*.json")))
                raise BioresConfigError(
                    f"--deepspeed {value!r} is neither a shipped config ({shipped}) nor a JSON file"
                )
            try:
                json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise BioresConfigError(f"--deepspeed {path} is not valid JSON: {exc.msg}") from None
            import importlib.util

            if importlib.util.find_spec("deepspeed") is None:
                raise BioresConfigError(
                    f"--deepspeed {value} needs the deepspeed package (pip install deepspeed); the config is {path}"
                )
            if "=" in arg:
                argv[i] = f"--deepspeed={path}"
            else:
                argv[i + 1] = str(path)
    return argv


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    import os
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not any(a.startswith("--ddp_backend") for a in argv):
        import torch

        if not torch.cuda.is_available():  # CPU DDP (accelerate launch / torchrun): gloo, not nccl
            argv += ["--ddp_backend", "gloo"]
    argv = resolve_deepspeed(argv)
    parser = transformers.HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    model_args, data_args, training_args, unknown = parser.parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True
    )
    if unknown:
        raise BioresConfigError(f"unknown flag(s): {' '.join(unknown)}")
    if not data_args.data_path:
        raise BioresConfigError("--data_path is required (LLaVA JSON or a biores synth folder)")
    check_training_flags(training_args)
    check_tiny_config(model_args.tiny_config)
    from .precision import check_dtype

    check_dtype(model_args.torch_dtype)
    if model_args.model_name_or_path == "tiny":
        pretrained_tower_config(model_args.vision_tower)  # a tower kind or a saved tower folder
    else:
        checkpoint_kind(
            model_args.model_name_or_path, training=True, flag="--model_name_or_path"
        )  # a one-line error before any weight is allocated
    if model_args.pretrain_mm_mlp_adapter and not Path(model_args.pretrain_mm_mlp_adapter).is_file():
        raise BioresConfigError(f"--pretrain_mm_mlp_adapter {model_args.pretrain_mm_mlp_adapter} does not exist")
    return model_args, data_args, training_args
