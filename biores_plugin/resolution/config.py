"""The resolution flags (LLaVA ``DataArguments`` style), validated once, with one set of defaults.

``biores-train``, the original-LLaVA entry, ``biores_llava``'s model args and ``biores info``
all build this dataclass; a checkpoint saves it as ``biores_config.json`` (and in
``config.biores``) so that loading it again uses the same policy by default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional, get_type_hints

from ..errors import BioresConfigError
from .levels import capped
from .mixed import MixedResolution
from .policy import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, NativePolicy, Policy, parse_policy

__all__ = [
    "BIORES_CONFIG_NAME",
    "ResolutionConfig",
    "add_resolution_arguments",
    "is_native_like",
    "pixel_range",
    "resolution_fields",
]

BIORES_CONFIG_NAME = "biores_config.json"


def is_native_like(spec: Any) -> bool:
    """``native`` or a longest-side cap (``448``, ``downsample:448``): any image size is accepted."""
    text = str(spec).strip().lower()
    return (
        text == "native"
        or text[:1].isdigit()
        or (text.startswith("downsample") and not text.endswith((":pad", ":crop", ":square", ":stretch")))
    )


def pixel_range(min_pixels: Optional[int], max_pixels: Optional[int]) -> tuple[int, int]:
    """A native policy's pixel range, the default range (``policy.py``) where a bound is not given."""
    return (
        DEFAULT_MIN_PIXELS if min_pixels is None else min_pixels,
        DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
    )


def _positive(name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            text = str(value).strip()
            value = int(text) if text.lstrip("-").isdigit() else int(float(text))
        except (TypeError, ValueError):
            raise BioresConfigError(f"--{name} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise BioresConfigError(f"--{name} must be a positive integer, got {value}")
    return int(value)


@dataclass
class ResolutionConfig:
    """How a model sees images. ``patch_size=None`` means "the vision tower's" until resolved."""

    image_aspect_ratio: str = field(
        default="native",
        metadata={
            "help": "native, pad, crop (LLaVA's square), stretch, anyres, anyres_max_N or a longest side such as 448"
        },
    )
    min_pixels: Optional[int] = field(
        default=None, metadata={"help": f"native: smallest pixel count after resizing (default {DEFAULT_MIN_PIXELS})"}
    )
    max_pixels: Optional[int] = field(
        default=None, metadata={"help": f"native: largest pixel count after resizing (default {DEFAULT_MAX_PIXELS})"}
    )
    patch_size: Optional[int] = field(default=None, metadata={"help": "vision patch size (default: the tower's)"})
    merge_size: int = field(default=1, metadata={"help": "2 = 2x2 token merge after the tower"})
    image_size: int = field(default=336, metadata={"help": "fixed / anyres base size"})
    mixed_resolution: Optional[str] = field(
        default=None, metadata={"help": "native only: per-sample mix, e.g. native:0.5,448:0.25,224:0.25"}
    )
    train_resolution_label: Optional[str] = field(
        default=None, metadata={"help": "what reports call the training resolution"}
    )

    def __post_init__(self) -> None:
        self.image_aspect_ratio = str(self.image_aspect_ratio).strip()
        self.min_pixels = _positive("min_pixels", self.min_pixels)
        self.max_pixels = _positive("max_pixels", self.max_pixels)
        self.patch_size = _positive("patch_size", self.patch_size)
        self.merge_size = _positive("merge_size", self.merge_size) or 1
        self.image_size = _positive("image_size", self.image_size) or 336
        if self.mixed_resolution is not None and not str(self.mixed_resolution).strip():
            self.mixed_resolution = None
        native = is_native_like(self.image_aspect_ratio)
        given = [f"--{n}" for n in ("min_pixels", "max_pixels", "mixed_resolution") if getattr(self, n) is not None]
        if given and not native:
            raise BioresConfigError(
                f"{'/'.join(given)} {'applies' if len(given) == 1 else 'apply'} only to --image_aspect_ratio native "
                f"(got {self.image_aspect_ratio!r})"
            )
        lo, hi = self.pixel_range
        if lo > hi:
            lo_name = "--min_pixels" if self.min_pixels is not None else "the default --min_pixels"
            hi_name = "--max_pixels" if self.max_pixels is not None else "the default --max_pixels"
            raise BioresConfigError(f"{lo_name} ({lo}) is larger than {hi_name} ({hi})")
        MixedResolution(self.mixed_resolution)  # syntax and probabilities
        self._build(self.patch_size or 1)  # the policy string (the grid too, once the patch size is known)

    # -- what it means

    @property
    def pixel_range(self) -> tuple[int, int]:
        """``(min_pixels, max_pixels)`` with the default range filled in."""
        return pixel_range(self.min_pixels, self.max_pixels)

    def _build(self, patch_size: int) -> Policy:
        spec = self.image_aspect_ratio
        options: dict[str, Any] = {"patch_size": patch_size}
        if is_native_like(spec):
            options.update(merge_size=self.merge_size, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        elif spec.lower().startswith("anyres"):
            options.update(base_size=self.image_size)
        else:
            options.update(size=self.image_size)
        return parse_policy(spec, **options)

    def policy(self) -> Policy:
        """The policy these flags describe (the patch size must be known: see :meth:`resolved`)."""
        if self.patch_size is None:
            raise BioresConfigError("the patch size is unknown: pass --patch_size or load a vision tower first")
        return self._build(self.patch_size)

    def base_policy(self) -> NativePolicy:
        """The native policy behind a native-like spec (what mixed-resolution draws cap)."""
        policy = self.policy()
        inner = getattr(policy, "then", policy)
        if not isinstance(inner, NativePolicy):
            raise BioresConfigError(f"--image_aspect_ratio {self.image_aspect_ratio!r} is not native")
        return inner

    def mixed(self, seed: int = 0) -> MixedResolution:
        return MixedResolution(self.mixed_resolution, seed)

    def level_policy(self, level: int) -> Policy:
        """The policy one mixed-resolution draw selects."""
        return capped(self.base_policy(), level)

    def resolved(self, patch_size: int | None = None, **changes: Any) -> ResolutionConfig:
        """A concrete copy: the tower's patch size, the pixel budget and the label filled in."""
        patch = _positive("patch_size", patch_size) if patch_size is not None else self.patch_size
        if patch is None:
            raise BioresConfigError("the patch size is unknown: pass --patch_size or load a vision tower first")
        values = {**asdict(self), **changes, "patch_size": patch}
        if is_native_like(values["image_aspect_ratio"]):
            values["min_pixels"], values["max_pixels"] = pixel_range(values["min_pixels"], values["max_pixels"])
        if not values.get("train_resolution_label"):
            values["train_resolution_label"] = (
                MixedResolution(values["mixed_resolution"]).label
                if is_native_like(values["image_aspect_ratio"])
                else None
            )
        out = ResolutionConfig(**values)
        if out.mixed_resolution:
            for level in out.mixed().levels:
                out.level_policy(level)  # a level below one patch is an error now, not at the first batch
        return out

    def with_overrides(self, **changes: Any) -> ResolutionConfig:
        """A copy with the given (non-None) fields replaced, validated again."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    # -- persistence (transformers habits)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResolutionConfig:
        if not isinstance(data, dict):
            raise BioresConfigError(f"a biores config must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise BioresConfigError(f"unknown biores config key(s): {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_flags(cls, source: Any) -> ResolutionConfig:
        """Pick this dataclass's fields from any flags object (``DataArguments``, a namespace)."""
        return cls(**{name: getattr(source, name) for name in cls.field_names() if hasattr(source, name)})

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        from ..io_utils import atomic_write_text

        path = Path(directory) / BIORES_CONFIG_NAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> ResolutionConfig | None:
        """The config saved in ``directory`` (``biores_config.json``, else ``config.json``'s ``biores``)."""
        directory = Path(directory)
        for name, key in ((BIORES_CONFIG_NAME, None), ("config.json", "biores")):
            path = directory / name
            if not path.is_file():
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BioresConfigError(f"{path} is not valid JSON ({type(exc).__name__}: {exc})") from None
            data = data.get(key) if key is not None and isinstance(data, dict) else data
            if data:
                return cls.from_dict(data)
        return None


# --------------------------------------------------------------------------- the flags, declared once


def resolution_fields(names: Sequence[str], **defaults: Any) -> list[tuple[str, Any, Any]]:
    """:class:`ResolutionConfig`'s fields ``names`` as ``(name, type, field)`` for
    ``dataclasses.make_dataclass`` (what ``HfArgumentParser`` reads); ``defaults`` replace defaults."""
    hints = get_type_hints(ResolutionConfig)
    own = {f.name: f for f in fields(ResolutionConfig)}
    unknown = sorted(set(names) - set(own))
    if unknown:
        raise BioresConfigError(f"ResolutionConfig has no field(s) {', '.join(unknown)}")
    return [
        (n, hints[n], field(default=defaults.get(n, own[n].default), metadata=dict(own[n].metadata))) for n in names
    ]


def add_resolution_arguments(
    parser: Any,
    names: Sequence[str],
    *,
    dashes: bool = False,
    typed: bool = True,
    options: Optional[dict[str, dict[str, Any]]] = None,
    **defaults: Any,
) -> None:
    """:class:`ResolutionConfig`'s fields ``names`` as argparse flags (``--max_pixels``; with
    ``dashes`` also ``--max-pixels``), their types, defaults (``defaults`` replace them) and help;
    ``options[name]`` adds or replaces ``add_argument`` keywords (a budget list's ``type``, ``required``)."""
    for name, hint, spec in resolution_fields(names, **defaults):
        kind = int if int in (hint, *getattr(hint, "__args__", ())) else str
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if dashes and "_" in name else [])
        kwargs = {
            "dest": name,
            "type": kind if typed else None,
            "default": spec.default,
            "help": spec.metadata.get("help"),
        }
        kwargs.update((options or {}).get(name, {}))
        if kwargs.get("required"):
            kwargs.pop("default")
        parser.add_argument(*flags, **kwargs)
