"""The one door from a checkpoint folder to ``(model, processor)``: a table of families keyed by
``config.json``'s ``model_type``, as transformers' Auto classes keep theirs.

Evaluation (``biores_llava``), training (``biores-train``) and the demo all call :func:`load`;
adding a family that fits one of the loaders below is one row in :data:`FAMILIES`.
Every processor :func:`load` returns has the same interface: ``tokenizer``, ``image_token``,
``build_prompt(text, n_images)`` and ``encode(texts, images, padding_side=...)`` ->
:class:`~biores_plugin.models.counting.Encoded` (inputs, visual tokens, tower sizes per sample).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import BioresConfigError
from .checkpoint import folder_config


def _llava(path: Any, resolution: Any, **kwargs: Any) -> tuple[Any, Any]:
    from .llava_checkpoints import load_llava

    return load_llava(path, resolution, **kwargs)


def _qwen_vl(path: Any, resolution: Any, **kwargs: Any) -> tuple[Any, Any]:
    from .qwen_vl import load_qwen_vl

    return load_qwen_vl(path, resolution, **kwargs)


def _stock(path: Any, resolution: Any, *, training: bool = False, vision_backend: str = "auto", **kwargs: Any):
    from .stock import load_stock

    return load_stock(path, dict(resolution or {}), **kwargs)


def _native_llava_class(config: Any) -> type:
    from .native_llava import BioresLlavaForConditionalGeneration

    return BioresLlavaForConditionalGeneration


def _auto_class(config: Any) -> type:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText._model_mapping[type(config)]


@dataclass(frozen=True)
class Family:
    """How biores runs one ``model_type``."""

    kind: str  # llava (LLaVA-1.5 style, native resolution), qwen_vl, hf_vlm (the checkpoint's own classes)
    loader: Callable[..., tuple[Any, Any]]
    model_class: Callable[[Any], type]  # config -> the class :func:`load` builds (meta-device estimates)
    policy: Optional[tuple[str, ...]] = None  # resolution fields a caller may set at evaluation (None: all)
    trains: bool = True  # biores-train fine-tunes it


_QWEN_POLICY = ("min_pixels", "max_pixels")
FAMILIES: dict[str, Family] = {
    "llava": Family("llava", _llava, _native_llava_class),
    "llava_next": Family("hf_vlm", _stock, _auto_class, policy=(), trains=False),
    "llava_onevision": Family("hf_vlm", _stock, _auto_class, policy=(), trains=False),
    "qwen2_vl": Family("qwen_vl", _qwen_vl, _auto_class, policy=_QWEN_POLICY),
    "qwen2_5_vl": Family("qwen_vl", _qwen_vl, _auto_class, policy=_QWEN_POLICY),
    "qwen3_vl": Family("qwen_vl", _qwen_vl, _auto_class, policy=_QWEN_POLICY),
}


def family_of(path: str | Path, flag: str = "checkpoint") -> tuple[str, Optional[Family]]:
    """``(model_type, family)`` of a folder; the family is None for a plain causal language model."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = str(folder_config(path, flag)["model_type"])
    if model_type in FAMILIES:
        return model_type, FAMILIES[model_type]
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return model_type, None
    raise BioresConfigError(
        f"{flag} {path}: model_type {model_type!r} is neither a LLaVA, a Qwen2-VL / Qwen2.5-VL checkpoint "
        "nor a causal language model (for a language model pass --vision_tower TOWER_FOLDER too)"
    )


def checkpoint_kind(path: str | Path, *, training: bool = False, flag: str = "checkpoint") -> str:
    """``llava``, ``qwen_vl``, ``hf_vlm`` or ``lm`` (a language model to compose with a tower)."""
    model_type, family = family_of(path, flag)
    if family is None:
        return "lm"
    if training and not family.trains:
        raise BioresConfigError(
            f"{flag} {path}: biores-train does not fine-tune {model_type} checkpoints "
            f"(it trains: {', '.join(k for k, f in FAMILIES.items() if f.trains)})"
        )
    return family.kind


def empty_model(path: str | Path) -> Any:
    """The model :func:`load` would build for ``path``, on the meta device (shapes only, no memory)."""
    import torch
    from transformers import AutoConfig

    _, family = family_of(path)
    if family is None:
        raise BioresConfigError(f"{path} is a language model, not a vision-language checkpoint")
    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        return family.model_class(config)(config)


def load(
    path: str | Path,
    resolution: Any = None,
    *,
    training: bool = False,
    dtype: Any = None,
    attn_implementation: Optional[str] = None,
    vision_backend: str = "auto",
    flag: str = "checkpoint",
) -> tuple[Any, Any]:
    """``(model, processor)`` of a checkpoint folder.

    ``resolution``: at evaluation a mapping of policy overrides (``image_aspect_ratio``,
    ``min_pixels``, ``max_pixels``, ``merge_size``; None = the checkpoint's); for training the
    run's :class:`~biores_plugin.resolution.ResolutionConfig` (its patch size may be left to the
    checkpoint). A field a family runs at its own processor's value is a one-line error.
    """
    model_type, family = family_of(path, flag)
    if family is None:
        raise BioresConfigError(
            f"{flag} {path} is a language model: pass --vision_tower TOWER_FOLDER to compose a LLaVA"
        )
    if training and not family.trains:
        checkpoint_kind(path, training=True, flag=flag)
    if not training:
        resolution = {k: v for k, v in dict(resolution or {}).items() if v is not None}
        bad = sorted(set(resolution) - set(family.policy)) if family.policy is not None else []
        if bad:
            allowed = ", ".join(family.policy or ()) or "none"
            raise BioresConfigError(
                f"{model_type} checkpoints run at their own processor's policy; "
                f"{', '.join(bad)} not supported (allowed: {allowed})"
            )
    load_kwargs: dict[str, Any] = {}
    if dtype is not None:
        load_kwargs["dtype"] = dtype
    if attn_implementation:
        load_kwargs["attn_implementation"] = attn_implementation
    return family.loader(path, resolution, training=training, vision_backend=vision_backend, **load_kwargs)
