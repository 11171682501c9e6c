"""transformers-compatible image processors that apply a resolution policy.

:class:`BioresNativeImageProcessor` (Qwen2-VL ``smart_resize`` grid; per-image tensors or
Qwen2-VL's packed patches) and :class:`BioresAnyResImageProcessor` (equal to
``LlavaNextImageProcessor``). ``AutoImageProcessor`` finds them after
:func:`register_auto_classes` (``biores_plugin.register()``); design notes: ``docs/processing.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torchvision.transforms.v2 import functional as tvF
from transformers import PretrainedConfig
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from .errors import BioresConfigError
from .resolution import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, AnyResPolicy, NativePolicy, ResolutionConfig

__all__ = [
    "BioresAnyResVisionConfig",
    "BioresVisionConfig",
    "BioresNativeImageProcessor",
    "BioresAnyResImageProcessor",
    "to_uint8_chw",
    "register_auto_classes",
]

_RESAMPLE = {
    0: tvF.InterpolationMode.NEAREST,
    2: tvF.InterpolationMode.BILINEAR,
    3: tvF.InterpolationMode.BICUBIC,
    1: tvF.InterpolationMode.LANCZOS,
}


def to_uint8_hwc(image: Any) -> torch.Tensor:
    """Any supported image -> ``uint8`` tensor ``[H, W, 3]`` (zero-copy when the input allows).

    Every input goes through :func:`biores_plugin.image_io.load_array`, the one checked route:
    paths, bytes, files, PIL images (lazy ones loaded under strict truncation, EXIF applied,
    closed ones refused), numpy arrays and tensors (``[C, H, W]``, ``[H, W, C]``, ``[H, W]``),
    with its intensity rules (docs/image_loading.md). Loaded upright RGB images and ``uint8``
    RGB arrays / tensors are not copied beyond what torch needs.
    """
    from .image_io import load_array  # late import keeps this module light

    array = load_array(image, keep_channels=False, copy=False)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


def to_uint8_chw(image: Any) -> torch.Tensor:
    """Like :func:`to_uint8_hwc` but ``[3, H, W]`` (a channels-last view, no copy)."""
    return to_uint8_hwc(image).permute(2, 0, 1)


def _map_images(fn: Any, images: list[Any]) -> list[Any]:
    """Run ``fn`` over images, in threads when there are several (torch and PIL release the GIL)."""
    threads = max(1, torch.get_num_threads())
    workers = min(len(images), threads)
    if workers <= 1:
        return [fn(image) for image in images]
    # One image per thread, each single-threaded inside torch: no oversubscription of the
    # intra-op pool (the setting is process-wide, so it is restored right after).
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, images))
    finally:
        torch.set_num_threads(threads)


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, (list, tuple)):
        flat: list[Any] = []
        for item in images:
            flat.extend(_as_list(item) if isinstance(item, (list, tuple)) else [item])
        return flat
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        return list(images)  # a batch, as transformers' make_list_of_images reads it
    return [images]


def _resize_u8(image: torch.Tensor, height: int, width: int, resample: int) -> torch.Tensor:
    if tuple(image.shape[-2:]) == (height, width):
        return image
    mode = _RESAMPLE.get(int(resample))
    if mode is None:
        raise BioresConfigError(f"unsupported resample {resample!r}; use 0, 1, 2 or 3 (PIL codes)")
    return tvF.resize(image, [height, width], interpolation=mode, antialias=True)


class _AffineNormalizer:
    """``(x / 255 - mean) / std`` as one ``x * scale + offset`` on uint8 input."""

    def __init__(
        self, do_rescale: bool, rescale_factor: float, do_normalize: bool, mean: Sequence[float], std: Sequence[float]
    ):
        rescale = rescale_factor if do_rescale else 1.0
        mean_t = torch.tensor(mean if do_normalize else [0.0, 0.0, 0.0], dtype=torch.float64)
        std_t = torch.tensor(std if do_normalize else [1.0, 1.0, 1.0], dtype=torch.float64)
        self.scale = (rescale / std_t).float()
        self.offset = (-mean_t / std_t).float()

    def __call__(self, image_u8: torch.Tensor, out: torch.Tensor | None = None, channel_dim: int = -3) -> torch.Tensor:
        """``[..., C, H, W]`` uint8 -> float32 (channel on ``channel_dim``), into ``out`` if given."""
        shape = (-1,) + (1,) * (-channel_dim - 1)
        offset, scale = self.offset.view(shape), self.scale.view(shape)
        if out is None:
            return torch.addcmul(offset, image_u8.float(), scale)
        return torch.addcmul(offset, image_u8, scale, out=out)


#: Resampling and normalisation defaults shared by both processors (CLIP's statistics).
_PIXEL_DEFAULTS: dict[str, Any] = {
    "image_mean": list(OPENAI_CLIP_MEAN),
    "image_std": list(OPENAI_CLIP_STD),
    "resample": 3,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
}


class _BioresImageProcessorBase(BaseImageProcessor):
    """Shared plumbing: attribute defaults, serialisation, normalisation."""

    model_input_names = ["pixel_values"]
    _defaults: dict[str, Any] = {}

    def __init__(self, **kwargs: Any):
        for key in ("image_processor_type", "processor_class", "feature_extractor_type", "auto_map"):
            kwargs.pop(key, None)
        unknown = sorted(set(kwargs) - set(self._defaults))
        if unknown:
            raise BioresConfigError(f"{type(self).__name__} got unknown option(s): {', '.join(unknown)}")
        values = {**self._defaults, **{k: v for k, v in kwargs.items() if v is not None}}
        super().__init__()
        for key, value in values.items():
            setattr(self, key, list(value) if isinstance(value, tuple) else value)

    def _normalizer(self) -> _AffineNormalizer:
        return _AffineNormalizer(
            self.do_rescale, self.rescale_factor, self.do_normalize, self.image_mean, self.image_std
        )

    def to_dict(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in self._defaults}
        out["image_processor_type"] = type(self).__name__
        return out

    def _check_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - set(self._defaults) - {"return_tensors", "return_format", "device"})
        if unknown:
            raise BioresConfigError(f"{type(self).__name__}.preprocess got unknown option(s): {', '.join(unknown)}")
        return {
            key: kwargs.get(key, getattr(self, key)) if kwargs.get(key) is not None else getattr(self, key)
            for key in self._defaults
        }


class BioresNativeImageProcessor(_BioresImageProcessorBase):
    """Native-resolution processor (Qwen2-VL ``smart_resize`` grid, CLIP-style normalisation).

    Args mirror ``Qwen2VLImageProcessor``: ``patch_size``, ``merge_size``, ``temporal_patch_size``,
    ``min_pixels``, ``max_pixels``, ``image_mean``, ``image_std``, ``resample`` (PIL code),
    ``do_rescale``, ``rescale_factor``, ``do_normalize``; plus ``return_format``:
    ``"images"`` (default) gives ``pixel_values`` as a list of ``[3, H_i, W_i]`` float tensors,
    ``"patches"`` gives Qwen2-VL's packed ``[sum N_i, 3*t*p*p]`` layout with ``image_grid_thw``.
    Either way the output has ``image_sizes`` (resized ``(h, w)``), ``image_grid_hw`` (patch
    grid) and ``num_visual_tokens`` (after the ``merge_size`` merge).
    """

    model_input_names = ["pixel_values", "image_grid_hw"]
    _defaults = {
        "patch_size": 14,
        "merge_size": 1,
        "temporal_patch_size": 1,
        "min_pixels": DEFAULT_MIN_PIXELS,
        "max_pixels": DEFAULT_MAX_PIXELS,
        **_PIXEL_DEFAULTS,
        "return_format": "images",
    }

    @classmethod
    def from_policy(cls, policy: NativePolicy, **kwargs: Any) -> BioresNativeImageProcessor:
        """The processor that applies ``policy`` (its grid and pixel range); ``kwargs``: normalisation."""
        return cls(
            patch_size=policy.patch_size,
            merge_size=policy.merge_size,
            min_pixels=policy.min_pixels,
            max_pixels=policy.max_pixels,
            **kwargs,
        )

    @property
    def policy(self) -> NativePolicy:
        return NativePolicy(self.patch_size, self.merge_size, self.min_pixels, self.max_pixels)

    def get_number_of_image_tokens(self, height: int, width: int) -> int:
        """Visual tokens an image of ``height x width`` becomes, without touching pixels."""
        return self.policy.visual_tokens(width, height)

    def preprocess(self, images: Any, return_tensors: Any = None, **kwargs: Any) -> BatchFeature:
        opts = self._check_options(kwargs)
        fmt = kwargs.get("return_format") or opts["return_format"]
        if fmt not in ("images", "patches"):
            raise BioresConfigError(f"return_format must be 'images' or 'patches', got {fmt!r}")
        policy = NativePolicy(opts["patch_size"], opts["merge_size"], opts["min_pixels"], opts["max_pixels"])
        norm = _AffineNormalizer(
            opts["do_rescale"], opts["rescale_factor"], opts["do_normalize"], opts["image_mean"], opts["image_std"]
        )
        p, m, t = opts["patch_size"], opts["merge_size"], opts["temporal_patch_size"]

        def one(image: Any) -> torch.Tensor:
            hwc = to_uint8_hwc(image)
            new_w, new_h = policy.resize_target(int(hwc.shape[1]), int(hwc.shape[0]))
            # The uint8 antialiased kernel is fastest on channels-last input and returns
            # channels-last memory: [3, h, w] whose storage is [h, w, 3].
            resized = _resize_u8(hwc.permute(2, 0, 1), new_h, new_w, opts["resample"])
            if fmt == "images":  # normalised straight into a contiguous [3, h, w]
                return norm(resized, out=torch.empty(resized.shape, dtype=torch.float32))
            return resized

        resized = _map_images(one, _as_list(images))
        sizes = [tuple(int(x) for x in r.shape[-2:]) for r in resized]
        grids = [(h // p, w // p) for h, w in sizes]
        tokens = [gh * gw // (m * m) for gh, gw in grids]

        data: dict[str, Any] = {
            "image_sizes": torch.tensor(sizes, dtype=torch.long).reshape(-1, 2),
            "image_grid_hw": torch.tensor(grids, dtype=torch.long).reshape(-1, 2),
            "num_visual_tokens": torch.tensor(tokens, dtype=torch.long),
        }
        if fmt == "images":
            data["pixel_values"] = resized
        else:
            # Qwen2-VL's packed layout, normalised in one pass straight into the output rows
            out = torch.empty(sum(gh * gw for gh, gw in grids), 3 * t * p * p)
            starts = np.cumsum([0] + [gh * gw for gh, gw in grids]).tolist()

            def write(k: int) -> None:
                (gh, gw), image = grids[k], resized[k].permute(1, 2, 0)  # [h, w, 3], channels-last storage
                image = image if image.is_contiguous() else image.contiguous()
                # [gh/m, m, p, gw/m, m, p, C] -> [gh/m, gw/m, m, m, C, t, p, p]
                src = image.view(gh // m, m, p, gw // m, m, p, 3).permute(0, 3, 1, 4, 6, 2, 5)
                src = src.unsqueeze(5).expand(-1, -1, -1, -1, -1, t, -1, -1)
                norm(src, out=out[starts[k] : starts[k + 1]].view(src.shape), channel_dim=-4)

            _map_images(write, list(range(len(grids))))
            data["pixel_values"] = out
            data["image_grid_thw"] = torch.tensor([(1, gh, gw) for gh, gw in grids], dtype=torch.long).reshape(-1, 3)
        return BatchFeature(data=data)


class BioresAnyResImageProcessor(_BioresImageProcessorBase):
    """LLaVA-NeXT anyres processing with the same config keys as ``LlavaNextImageProcessor``.

    Output equals ``LlavaNextImageProcessor``: ``pixel_values [B, max_crops, 3, S, S]`` (zero
    padded across the batch), ``image_sizes [B, 2]`` (original ``(h, w)``). The best-fit image is
    resized and normalised once and cut into crops as views, instead of resizing, cropping and
    normalising every crop again.
    """

    model_input_names = ["pixel_values", "image_sizes"]
    _defaults = {
        "size": {"shortest_edge": 336},
        "crop_size": {"height": 336, "width": 336},
        "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
        **_PIXEL_DEFAULTS,
        "do_pad": True,
        "patch_size": 14,
    }

    def _base_size(self, size: dict[str, int], crop_size: dict[str, int]) -> tuple[int, int, int]:
        if size.get("height") and size.get("width"):
            base = (int(size["height"]), int(size["width"]))
        elif size.get("shortest_edge"):
            base = (int(size["shortest_edge"]),) * 2
        else:
            raise BioresConfigError(f"size must have shortest_edge or height and width, got {size}")
        crop = int(crop_size.get("height") or base[0]) if crop_size else base[0]
        if base != (crop, crop):
            raise BioresConfigError(
                f"anyres needs size and crop_size to agree on one square base, got size={size} crop_size={crop_size}"
            )
        return base[0], base[1], crop

    @property
    def policy(self) -> AnyResPolicy:
        _, _, crop = self._base_size(self.size, self.crop_size)
        return AnyResPolicy(tuple(tuple(p) for p in self.image_grid_pinpoints), crop, self.patch_size)

    def preprocess(self, images: Any, return_tensors: Any = None, **kwargs: Any) -> BatchFeature:
        opts = self._check_options(kwargs)
        _, _, crop = self._base_size(opts["size"], opts["crop_size"])
        policy = AnyResPolicy(tuple(tuple(p) for p in opts["image_grid_pinpoints"]), crop, opts["patch_size"])
        norm = _AffineNormalizer(
            opts["do_rescale"], opts["rescale_factor"], opts["do_normalize"], opts["image_mean"], opts["image_std"]
        )
        resample = opts["resample"]

        def one(image: Any) -> tuple[torch.Tensor, tuple[int, int]]:
            u8 = to_uint8_chw(image)
            height, width = int(u8.shape[-2]), int(u8.shape[-1])
            best_w, best_h = policy.best_resolution(width, height)
            # aspect-preserving fit into the pinpoint (HF get_patch_output_size: ceil, capped)
            if best_w / width < best_h / height:
                new_w, new_h = best_w, min(math.ceil(height * best_w / width), best_h)
            else:
                new_w, new_h = min(math.ceil(width * best_h / height), best_w), best_h
            fitted = _resize_u8(u8, new_h, new_w, resample)
            canvas = torch.zeros((3, best_h, best_w), dtype=torch.uint8)  # pad with black, as HF
            top, left = (best_h - new_h) // 2, (best_w - new_w) // 2
            canvas[:, top : top + new_h, left : left + new_w] = fitted
            base = _resize_u8(u8, crop, crop, resample).contiguous()
            rows, cols = best_h // crop, best_w // crop
            crops = canvas.view(3, rows, crop, cols, crop).permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, crop, crop)
            return norm(torch.cat([base.unsqueeze(0), crops], dim=0)), (height, width)

        results = _map_images(one, _as_list(images))
        per_image = [r[0] for r in results]
        sizes = [r[1] for r in results]

        if opts["do_pad"] and per_image:
            most = max(x.shape[0] for x in per_image)
            per_image = [
                torch.cat([x, x.new_zeros((most - x.shape[0], *x.shape[1:]))]) if x.shape[0] < most else x
                for x in per_image
            ]
        data: dict[str, Any] = {"pixel_values": per_image, "image_sizes": sizes}
        if return_tensors in ("pt", "torch") or str(return_tensors) == "TensorType.PYTORCH":
            data["pixel_values"] = torch.stack(per_image) if opts["do_pad"] else per_image
            data["image_sizes"] = torch.tensor(sizes, dtype=torch.long).reshape(-1, 2)
        return BatchFeature(data=data)


class BioresVisionConfig(PretrainedConfig):
    """Config class under which biores registers its image processors with ``AutoImageProcessor``."""

    model_type = "biores_vision"

    def __init__(self, resolution: dict[str, Any] | None = None, **kwargs: Any):
        self.resolution = dict(resolution or ResolutionConfig().to_dict())
        super().__init__(**kwargs)


class BioresAnyResVisionConfig(BioresVisionConfig):
    """Config class for the anyres processor's ``AutoImageProcessor`` registration."""

    model_type = "biores_anyres_vision"


def register_auto_classes() -> None:
    """Make ``AutoImageProcessor.from_pretrained`` resolve biores processors by class name.

    transformers falls back to classes registered with ``AutoImageProcessor.register``, which
    needs a config class: biores registers its own, so no stock mapping is touched (idempotent).
    """
    from transformers import AutoConfig, AutoImageProcessor

    for config, processor in (
        (BioresVisionConfig, BioresNativeImageProcessor),
        (BioresAnyResVisionConfig, BioresAnyResImageProcessor),
    ):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoImageProcessor.register(config, image_processor_classes={"torchvision": processor}, exist_ok=True)
