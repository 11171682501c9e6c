"""What llava's dataset and multimodal code see in a native session: processor and image list.

:class:`NativeLlavaImageProcessor` stands in for the tower's processor: one ``[3, H, W]`` tensor
per image at its own policy size (the shared cap ``apply_policy``, then the native grid), at the
level ``MixedResolution`` draws for the current sample. :class:`NativeImages` carries differently
sized images through llava's ``prepare_inputs_labels_for_multimodal`` as one batched input.
"""

from __future__ import annotations

from typing import Any

import torch

from biores_plugin.errors import BioresConfigError
from biores_plugin.original_llava.state import NativeState, current_sample_index, log_event
from biores_plugin.resolution import NativePolicy, Policy, apply_policy, resolution_label

__all__ = ["NativeImages", "NativeLlavaImageProcessor", "image_at_policy", "native_processor_for"]


def _resample_code(processor: Any) -> int:
    """The PIL code of ``processor.resample`` (the grid resize, not the cap), bicubic when unknown."""
    value = getattr(processor, "resample", 3)
    try:
        code = int(getattr(value, "value", value))
    except (TypeError, ValueError):
        return 3
    return code if code in (0, 1, 2, 3) else 3


def native_processor_for(base: Any, policy: NativePolicy):
    """A :class:`~biores_plugin.processing.BioresNativeImageProcessor` with ``base``'s normalisation."""
    from biores_plugin.processing import BioresNativeImageProcessor

    kwargs: dict[str, Any] = {"resample": _resample_code(base)}
    for key in ("image_mean", "image_std", "do_rescale", "rescale_factor", "do_normalize"):
        value = getattr(base, key, None)
        if value is not None:
            kwargs[key] = list(value) if isinstance(value, (list, tuple)) else value
    return BioresNativeImageProcessor.from_policy(policy, **kwargs)


def image_at_policy(native: Any, image: Any, policy: Policy) -> torch.Tensor:
    """One image -> ``[3, H, W]`` at ``policy``: the shared cap (``apply_policy``), then the native grid."""
    from biores_plugin.image_io import load_image

    image = apply_policy(load_image(image, copy=False), policy)  # checked: truncation, EXIF, 16-bit
    inner = getattr(policy, "then", policy)
    assert isinstance(inner, NativePolicy)
    out = native.preprocess(image, min_pixels=inner.min_pixels, max_pixels=inner.max_pixels)
    return out["pixel_values"][0]


class NativeLlavaImageProcessor:
    """What LLaVA's dataset sees as ``data_args.image_processor`` in a native session.

    ``preprocess(image)['pixel_values'][0]`` is one ``[3, H, W]`` tensor at the image's native policy size
    (or, with ``--mixed_resolution``, at the level drawn for the current sample). Every other attribute
    (``image_mean``, ``crop_size``, ``size``...) reads through to the tower's own processor.
    """

    def __init__(self, base: Any, state: NativeState):
        self.base = base
        self.state = state
        self._cache: tuple[Any, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "state", "_cache"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def _native(self):
        policy = self.state.policy
        if self._cache is None or self._cache[0] != policy:
            self._cache = (policy, native_processor_for(self.base, policy))
        return self._cache[1]

    def _level(self, index: int | None) -> int:
        if index is None:  # never silently fall back to plain native in a mixed run
            raise BioresConfigError(
                "--mixed_resolution needs the sample index, but LazySupervisedDataset.__getitem__ is not "
                "hooked in this process (call biores_plugin.original_llava.apply() in dataloader workers)"
            )
        assert self.state.mixed is not None
        return self.state.mixed.draw(index)

    def preprocess(self, images: Any, return_tensors: Any = None, **kwargs: Any):
        from transformers import BatchFeature

        items = list(images) if isinstance(images, (list, tuple)) else [images]
        native = self._native()
        index = current_sample_index()
        pixels = []
        for image in items:
            if self.state.mixed is None:
                pixels.append(image_at_policy(native, image, self.state.policy))
                continue
            level = self._level(index)
            tensor = image_at_policy(native, image, self.state.resolution.level_policy(level))
            pixels.append(tensor)
            log_event(
                "draw",
                state=self.state,
                index=index,
                choice=resolution_label(level),
                original_wh=list(getattr(image, "size", ())),
                size_hw=list(tensor.shape[-2:]),
            )
        return BatchFeature(data={"pixel_values": pixels})

    __call__ = preprocess


class NativeImages(list):
    """A list of ``[3, H_i, W_i]`` images that llava's multimodal code treats as one batched input.

    llava's ``prepare_inputs_labels_for_multimodal`` sends ``type(images) is list`` (or 5-D) inputs through
    ``torch.cat`` (same sizes only); anything else goes straight to ``encode_images`` and is then indexed one
    image at a time. This subclass is not ``list`` itself and reports ``ndim == 4``, so it takes the second
    path, where the hooked ``encode_images`` returns one feature sequence per image.
    """

    ndim = 4
    visual_tokens: list[int]

    @property
    def sizes(self) -> list[list[int]]:
        return [list(x.shape[-2:]) for x in self]
