"""The biores resolution config: what a checkpoint remembers about how it saw images.

Saved as ``biores_config.json`` beside a checkpoint (and embedded in the model config's
``biores`` field) so that loading the checkpoint again uses the same policy by default.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig

from .errors import BioresConfigError
from .policy import Policy, parse_policy

BIORES_CONFIG_NAME = "biores_config.json"


@dataclass
class ResolutionConfig:
    """LLaVA-style resolution flags, validated (``image_aspect_ratio`` is a policy string)."""

    image_aspect_ratio: str = "native"
    min_pixels: int | None = None
    max_pixels: int | None = None
    patch_size: int = 14
    merge_size: int = 1
    image_size: int = 336  # fixed / anyres base size
    mixed_resolution: str | None = None  # training-time mix, e.g. "native:0.5,448:0.25,224:0.25"
    train_resolution_label: str | None = None  # what reports call the training resolution

    def __post_init__(self) -> None:
        self.policy()  # validate early: one-line error before any model loads

    def policy(self) -> Policy:
        spec = self.image_aspect_ratio
        options: dict[str, Any] = {"patch_size": self.patch_size}
        text = str(spec).lower()
        if text == "native" or text[:1].isdigit() or text.startswith("downsample"):
            options.update(merge_size=self.merge_size, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        elif text.startswith("anyres"):
            options.update(base_size=self.image_size)
        else:
            options.update(size=self.image_size)
        return parse_policy(spec, **options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResolutionConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BioresConfigError(f"unknown biores config key(s): {', '.join(unknown)}")
        return cls(**data)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        from .io_utils import atomic_write_text

        path = Path(directory) / BIORES_CONFIG_NAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "ResolutionConfig | None":
        path = Path(directory) / BIORES_CONFIG_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BioresConfigError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        return cls.from_dict(data)


class BioresVisionConfig(PretrainedConfig):
    """Config class under which biores registers its image processors with ``AutoImageProcessor``."""

    model_type = "biores_vision"

    def __init__(self, resolution: dict[str, Any] | None = None, **kwargs: Any):
        self.resolution = dict(resolution or ResolutionConfig().to_dict())
        super().__init__(**kwargs)


class BioresAnyResVisionConfig(BioresVisionConfig):
    """Config class for the anyres processor's ``AutoImageProcessor`` registration."""

    model_type = "biores_anyres_vision"
