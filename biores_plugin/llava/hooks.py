"""Native- and mixed-resolution hooks around the original LLaVA code (llava-torch 1.2.2, LLaVA-NeXT).

Every hook wraps one of llava's own functions by name and only changes behaviour for native-resolution
inputs; each is skipped cleanly when its hook point does not exist in the installed ``llava`` flavour.

===========================================  ==================================================================
hook point                                   native behaviour
===========================================  ==================================================================
``llava.train.train.make_supervised_data_    the dataset's ``data_args.image_processor`` becomes a
module``                                     :class:`NativeLlavaImageProcessor`: LLaVA's own
                                             ``LazySupervisedDataset.__getitem__`` (and LLaVA-NeXT's
                                             ``process_image``) call ``processor.preprocess(img)['pixel_values']
                                             [0]`` for any aspect ratio they do not know, and get one ``[3, H, W]``
                                             tensor at the image's own policy size; the collator is wrapped so
                                             ``batch['images']`` always stays a LIST of differently sized images.
``LazySupervisedDataset.__getitem__``        publishes the sample index (a context variable) so the
                                             mixed-resolution draw depends on ``(--seed, index)`` only.
``llava.train.train.safe_save_model_for_hf_  also writes ``biores_config.json`` (plus the ``biores`` field that
trainer`` / ``LLaVATrainer.__init__``        the trainer-init hook put into ``model.config``); checkpoints get
                                             it through a ``TrainerCallback``.
``LlavaMetaForCausalLM.prepare_inputs_       a list of differently sized ``[3, H, W]`` images (or any image list
labels_for_multimodal``                      when ``config.image_aspect_ratio == 'native'``) is handed on as a
                                             :class:`NativeImages` list, which llava's own splice code treats as
                                             an already batched input: it calls ``encode_images`` once and
                                             indexes one feature sequence per image. Logs one JSON line per
                                             training step (image sizes, visual tokens, sequence lengths).
``LlavaMetaForCausalLM.encode_images``       :class:`NativeImages` -> the tower (below) -> ``mm_projector`` on the
                                             concatenated tokens -> a list of ``[N_i, D]`` features.
``CLIPVisionTower.forward``                  (stock: ``torch.no_grad``, never ``interpolate_pos_encoding``)
                                             images whose size differs from the tower's ``image_size`` are
                                             encoded with ``biores_plugin.vision.encode_packed`` (one packed,
                                             padding-free pass equal to per-image ``interpolate_pos_encoding=
                                             True``) or, for other ``select_feature`` modes, per image with
                                             ``interpolate_pos_encoding=True`` and llava's ``feature_select``.
``llava.mm_utils.process_images``            ``model_cfg.image_aspect_ratio == 'native'`` -> a list of per-image
                                             ``[3, H_i, W_i]`` tensors at the policy stored in ``model_cfg.biores``.
===========================================  ==================================================================
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biores_plugin.configuration import ResolutionConfig
from biores_plugin.errors import BioresConfigError
from biores_plugin.llava.resolution import (
    MixedResolution,
    parse_inference_policy,
    resolution_for,
)
from biores_plugin.llava.shims import rebind_llava_name
from biores_plugin.policy import DownsamplePolicy, NativePolicy, Policy

__all__ = [
    "LOG_NAME",
    "LOG_PREFIX",
    "NativeImages",
    "NativeLlavaImageProcessor",
    "NativeState",
    "activate",
    "active_state",
    "install_hooks",
    "installed_hooks",
    "log_event",
    "native_processor_for",
]

LOG_PREFIX = "[biores-llava] "
LOG_NAME = "biores_llava_log.jsonl"
_MARK = "__biores_hook__"
_INSTALLED: list[str] = []
_SAMPLE_INDEX: contextvars.ContextVar[int | None] = contextvars.ContextVar("biores_llava_sample_index", default=None)
_LOG_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------------- state
@dataclass
class NativeState:
    """What the running ``biores_plugin.llava.train`` session decided (None outside native sessions)."""

    resolution: ResolutionConfig
    seed: int = 42
    log_path: Path | None = None
    step: int = 0
    mixed: MixedResolution | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Re-validate after a change (e.g. the tower's real patch size) and rebuild the mixed sampler."""
        policy = resolution_for(self.resolution)
        spec = self.resolution.mixed_resolution
        self.mixed = MixedResolution(spec, policy, self.seed) if spec else None

    @property
    def policy(self) -> NativePolicy:
        return resolution_for(self.resolution)

    def set_patch_size(self, patch_size: int) -> None:
        if int(patch_size) != self.resolution.patch_size:
            self.resolution.patch_size = int(patch_size)
            self.refresh()


_STATE: NativeState | None = None
_CONFIG_EXTRAS: dict[str, Any] = {}


def activate(state: NativeState | None, config_extras: dict[str, Any] | None = None) -> NativeState | None:
    """Set the session state; ``config_extras`` are copied into ``model.config`` when it lacks them."""
    global _STATE
    _STATE = state
    _CONFIG_EXTRAS.clear()
    _CONFIG_EXTRAS.update({k: v for k, v in (config_extras or {}).items() if v is not None})
    return state


def active_state() -> NativeState | None:
    return _STATE


def log_event(event: str, *, state: NativeState | None = None, **data: Any) -> dict[str, Any]:
    """One JSON line on stdout (prefixed) and in ``<output_dir>/biores_llava_log.jsonl``.

    ``state`` defaults to the active session; the dataset passes its own (dataloader workers started with
    ``spawn`` do not inherit the module global).
    """
    record = {"event": event, **data}
    line = json.dumps(record, sort_keys=True, default=str)
    with _LOG_LOCK:
        print(LOG_PREFIX + line, flush=True)
        state = state if state is not None else _STATE
        if state is not None and state.log_path is not None:
            state.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(state.log_path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
    return record


# ------------------------------------------------------------------------------------------- processing
def _resample_code(processor: Any) -> int:
    value = getattr(processor, "resample", 3)
    try:
        code = int(getattr(value, "value", value))
    except (TypeError, ValueError):
        return 3
    return code if code in (0, 1, 2, 3) else 3


def native_processor_for(base: Any, policy: NativePolicy):
    """A :class:`~biores_plugin.processing.BioresNativeImageProcessor` with ``base``'s normalisation."""
    from biores_plugin.processing import BioresNativeImageProcessor

    kwargs: dict[str, Any] = dict(
        patch_size=policy.patch_size, merge_size=policy.merge_size,
        min_pixels=policy.min_pixels, max_pixels=policy.max_pixels, resample=_resample_code(base),
    )
    for key in ("image_mean", "image_std", "do_rescale", "rescale_factor", "do_normalize"):
        value = getattr(base, key, None)
        if value is not None:
            kwargs[key] = list(value) if isinstance(value, (list, tuple)) else value
    return BioresNativeImageProcessor(**kwargs)


def _apply_policy(native, image: Any, policy: Policy) -> torch.Tensor:
    """One image -> ``[3, H, W]`` at ``policy`` (a downsample cap first resizes the PIL image, then native)."""
    from PIL import Image

    if isinstance(policy, DownsamplePolicy):
        if not isinstance(image, Image.Image):
            from biores_plugin.image_io import load_image

            image = load_image(image)
        target = policy.downsample_size(*image.size)
        if target != image.size:
            image = image.resize(target, Image.Resampling.BICUBIC)
        policy = policy.then
    assert isinstance(policy, NativePolicy)
    out = native.preprocess(image, min_pixels=policy.min_pixels, max_pixels=policy.max_pixels)
    return out["pixel_values"][0]


class NativeLlavaImageProcessor:
    """What LLaVA's dataset sees as ``data_args.image_processor`` in a native session.

    ``preprocess(image)['pixel_values'][0]`` is one ``[3, H, W]`` tensor at the image's native policy size
    (or, with ``--mixed_resolution``, at the resolution drawn for the current sample). Every other attribute
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

    def preprocess(self, images: Any, return_tensors: Any = None, **kwargs: Any):
        from transformers import BatchFeature

        items = list(images) if isinstance(images, (list, tuple)) else [images]
        native = self._native()
        index = _SAMPLE_INDEX.get()
        pixels = []
        for image in items:
            policy: Policy = self.state.policy
            label = "native"
            if self.state.mixed is not None:
                if index is None:  # never silently fall back to plain native in a mixed run
                    raise BioresConfigError(
                        "--mixed_resolution needs the sample index, but LazySupervisedDataset.__getitem__ is not "
                        "hooked in this process (call biores_plugin.llava.apply() in dataloader workers)"
                    )
                draw = self.state.mixed.draw(index)
                policy, label = draw.policy, draw.label
            tensor = _apply_policy(native, image, policy)
            pixels.append(tensor)
            if self.state.mixed is not None:
                size = list(getattr(image, "size", ()))
                log_event("draw", state=self.state, index=index, choice=label, original_wh=size,
                          size_hw=list(tensor.shape[-2:]))
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


# ------------------------------------------------------------------------------------------------- hooks
def _is_hooked(fn: Any, name: str) -> bool:
    return getattr(fn, _MARK, None) == name


def _mark(fn: Callable, name: str) -> Callable:
    setattr(fn, _MARK, name)
    return fn


def _tower_side(tower: Any) -> int | None:
    cfg = getattr(tower, "config", None)
    side = getattr(cfg, "image_size", None)
    return int(side) if isinstance(side, int) else None


def _images_need_native(tower: Any, images: Any) -> bool:
    side = _tower_side(tower)
    if isinstance(images, torch.Tensor):
        return images.dim() == 4 and side is not None and tuple(images.shape[-2:]) != (side, side)
    if isinstance(images, (list, tuple)) and images and all(isinstance(x, torch.Tensor) and x.dim() == 3 for x in images):
        return side is None or any(tuple(x.shape[-2:]) != (side, side) for x in images)
    return False


def _native_tower_features(tower: Any, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[N_i, D]`` features of differently sized images, with llava's select_layer / select_feature."""
    from biores_plugin.vision import encode_packed

    device, dtype = tower.device, tower.dtype
    imgs = [x.to(device=device, dtype=dtype) for x in images]
    select = getattr(tower, "select_feature", "patch")
    if select in ("patch", "cls_patch"):
        try:
            packed = encode_packed(tower.vision_tower, imgs, feature_layer=int(tower.select_layer), select=select)
            return list(packed.per_image)
        except BioresConfigError:
            pass  # not a CLIP/SigLIP-style tower: fall back to the tower's own forward, one image at a time
    feats = []
    for img in imgs:
        out = tower.vision_tower(img.unsqueeze(0), output_hidden_states=True, interpolate_pos_encoding=True)
        feats.append(tower.feature_select(out)[0])
    return feats


def _hook_tower_forward() -> bool:
    try:
        module = importlib.import_module("llava.model.multimodal_encoder.clip_encoder")
    except Exception:
        return False
    cls = getattr(module, "CLIPVisionTower", None)
    if cls is None:
        return False
    orig = cls.forward
    if _is_hooked(orig, "tower_forward"):
        return True

    @functools.wraps(orig)
    def forward(self, images, *args, **kwargs):
        if args or kwargs or not _images_need_native(self, images):
            return orig(self, images, *args, **kwargs)
        with torch.no_grad():  # the stock forward is no_grad too: the tower stays frozen
            if isinstance(images, torch.Tensor):
                feats = _native_tower_features(self, list(images.unbind(0)))
                return torch.stack(feats, dim=0).to(images.dtype)
            feats = _native_tower_features(self, list(images))
            return [f.unsqueeze(0).to(x.dtype) for f, x in zip(feats, images)]

    cls.forward = _mark(forward, "tower_forward")
    return True


def _hook_encode_images(meta_cls: type) -> bool:
    orig = getattr(meta_cls, "encode_images", None)
    if orig is None:
        return False
    if _is_hooked(orig, "encode_images"):
        return True

    @functools.wraps(orig)
    def encode_images(self, images, *args, **kwargs):
        if not isinstance(images, NativeImages):
            return orig(self, images, *args, **kwargs)
        tower = self.get_model().get_vision_tower()
        per_image = tower(list(images))  # hooked tower forward: list of [1, N_i, D_v]
        per_image = [f[0] if f.dim() == 3 else f for f in per_image]
        lengths = [int(f.shape[0]) for f in per_image]
        projected = self.get_model().mm_projector(torch.cat(per_image, dim=0))
        images.visual_tokens = lengths
        return list(torch.split(projected, lengths, dim=0))

    meta_cls.encode_images = _mark(encode_images, "encode_images")
    return True


def _wants_native(model: Any, images: Any) -> bool:
    if isinstance(images, NativeImages) or not isinstance(images, list) or not images:
        return False
    if not all(isinstance(x, torch.Tensor) and x.dim() == 3 for x in images):
        return False  # anyres crops ([P, 3, H, W] per image) keep llava's own path
    if getattr(getattr(model, "config", None), "image_aspect_ratio", None) == "native":
        return True
    return len({tuple(x.shape) for x in images}) > 1


def _hook_prepare_inputs(meta_cls: type) -> bool:
    orig = getattr(meta_cls, "prepare_inputs_labels_for_multimodal", None)
    if orig is None:
        return False
    if _is_hooked(orig, "prepare_inputs"):
        return True
    signature = inspect.signature(orig)
    if "images" not in signature.parameters:
        return False

    @functools.wraps(orig)
    def prepare_inputs_labels_for_multimodal(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        images = bound.arguments.get("images")
        if not _wants_native(self, images):
            return orig(*bound.args, **bound.kwargs)
        native = NativeImages(images)
        bound.arguments["images"] = native
        out = orig(*bound.args, **bound.kwargs)
        if getattr(self, "training", False) and _STATE is not None:
            _log_batch(native, out)
        return out

    meta_cls.prepare_inputs_labels_for_multimodal = _mark(prepare_inputs_labels_for_multimodal, "prepare_inputs")
    return True


def _log_batch(images: NativeImages, out: tuple) -> None:
    state = _STATE
    assert state is not None
    state.step += 1
    attention_mask, embeds = out[2], out[4]
    if attention_mask is not None:
        seq_lens = [int(x) for x in attention_mask.sum(dim=1).tolist()]
    elif embeds is not None:
        seq_lens = [int(embeds.shape[1])] * int(embeds.shape[0])
    else:  # pragma: no cover
        seq_lens = []
    log_event(
        "batch", step=state.step, image_sizes_hw=images.sizes,
        visual_tokens=list(getattr(images, "visual_tokens", [])), seq_lens=seq_lens,
    )


def _hook_dataset_index(train_module: Any) -> bool:
    cls = getattr(train_module, "LazySupervisedDataset", None)
    if cls is None:
        return False
    orig = cls.__getitem__
    if _is_hooked(orig, "dataset_index"):
        return True

    @functools.wraps(orig)
    def __getitem__(self, i):
        token = _SAMPLE_INDEX.set(int(i) if isinstance(i, int) else None)
        try:
            return orig(self, i)
        finally:
            _SAMPLE_INDEX.reset(token)

    cls.__getitem__ = _mark(__getitem__, "dataset_index")
    return True


class _ListImagesCollator:
    """LLaVA's collator, but ``batch['images']`` stays a list of per-image tensors (never ``torch.stack``)."""

    def __init__(self, collator: Any):
        self.collator = collator

    def __getattr__(self, name: str) -> Any:
        if name == "collator":
            raise AttributeError(name)
        return getattr(self.collator, name)

    def __call__(self, instances):
        batch = self.collator(instances)
        images = batch.get("images")
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            batch["images"] = list(images.unbind(0))
        return batch


def _hook_data_module(train_module: Any) -> bool:
    orig = getattr(train_module, "make_supervised_data_module", None)
    if orig is None:
        return False
    if _is_hooked(orig, "data_module"):
        return True

    @functools.wraps(orig)
    def make_supervised_data_module(*args, **kwargs):
        state = _STATE
        data_args = kwargs.get("data_args", args[1] if len(args) > 1 else None)
        native = state is not None and getattr(data_args, "image_aspect_ratio", None) == "native"
        base = getattr(data_args, "image_processor", None)
        if native and base is not None and not isinstance(base, NativeLlavaImageProcessor):
            data_args.image_processor = NativeLlavaImageProcessor(base, state)
        module = orig(*args, **kwargs)
        if native and isinstance(module, dict) and module.get("data_collator") is not None:
            module["data_collator"] = _ListImagesCollator(module["data_collator"])
        return module

    train_module.make_supervised_data_module = _mark(make_supervised_data_module, "data_module")
    return True


def _save_resolution(output_dir: str | Path) -> None:
    state = _STATE
    if state is not None and output_dir and Path(output_dir).is_dir():
        state.resolution.save_pretrained(output_dir)


def _hook_final_save(train_module: Any) -> bool:
    orig = getattr(train_module, "safe_save_model_for_hf_trainer", None)
    if orig is None:
        return False
    if _is_hooked(orig, "final_save"):
        return True

    @functools.wraps(orig)
    def safe_save_model_for_hf_trainer(trainer, output_dir, *args, **kwargs):
        result = orig(trainer, output_dir, *args, **kwargs)
        if getattr(trainer.args, "should_save", True):
            _save_resolution(output_dir)
            if _STATE is not None:
                log_event("saved", output_dir=str(output_dir), biores=_STATE.resolution.to_dict())
        return result

    train_module.safe_save_model_for_hf_trainer = _mark(safe_save_model_for_hf_trainer, "final_save")
    return True


def _checkpoint_callback():
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class BioresCheckpointCallback(TrainerCallback):
        """Write ``biores_config.json`` into every ``checkpoint-N`` folder the trainer saves."""

        def on_save(self, args, state, control, **kwargs):
            if getattr(args, "should_save", True):
                _save_resolution(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            return control

    return BioresCheckpointCallback


def _hook_trainer_init() -> bool:
    try:
        from llava.train.llava_trainer import LLaVATrainer
    except Exception:
        return False
    orig = LLaVATrainer.__init__
    if _is_hooked(orig, "trainer_init"):
        return True

    @functools.wraps(orig)
    def __init__(self, *args, **kwargs):
        state = _STATE
        model = kwargs.get("model", args[0] if args else None)
        config = getattr(model, "config", None)
        for key, value in _CONFIG_EXTRAS.items():
            if config is not None and getattr(config, key, None) is None:
                setattr(config, key, value)
        if state is not None and model is not None:
            tower = model.get_vision_tower() if hasattr(model, "get_vision_tower") else None
            patch = getattr(getattr(tower, "config", None), "patch_size", None)
            if isinstance(patch, int):
                state.set_patch_size(patch)
            if config is not None and getattr(config, "image_aspect_ratio", None) == "native":
                config.biores = state.resolution.to_dict()
        orig(self, *args, **kwargs)
        if state is not None:
            self.add_callback(_checkpoint_callback())

    LLaVATrainer.__init__ = _mark(__init__, "trainer_init")
    return True


def _hook_process_images() -> bool:
    try:
        mm_utils = importlib.import_module("llava.mm_utils")
    except Exception:
        return False
    orig = getattr(mm_utils, "process_images", None)
    if orig is None:
        return False
    if _is_hooked(orig, "process_images"):
        return True

    @functools.wraps(orig)
    def process_images(images, image_processor, model_cfg, *args, **kwargs):
        if getattr(model_cfg, "image_aspect_ratio", None) != "native":
            return orig(images, image_processor, model_cfg, *args, **kwargs)
        policy = parse_inference_policy(
            getattr(model_cfg, "biores", None),
            min_pixels=getattr(model_cfg, "min_pixels", None), max_pixels=getattr(model_cfg, "max_pixels", None),
        )
        base = getattr(image_processor, "base", image_processor)
        native = native_processor_for(base, policy)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        return [_apply_policy(native, image, policy) for image in items]

    rebind_llava_name("llava.mm_utils", "process_images", _mark(process_images, "process_images"))
    return True


def install_hooks(train_module: Any | None = None) -> list[str]:
    """Install every hook whose hook point exists (idempotent); returns the installed names."""
    steps: list[tuple[str, Callable[[], bool]]] = [("process_images", _hook_process_images),
                                                    ("tower_forward", _hook_tower_forward)]
    try:
        arch = importlib.import_module("llava.model.llava_arch")
        meta = getattr(arch, "LlavaMetaForCausalLM", None)
    except Exception:
        meta = None
    if meta is not None:
        steps += [("prepare_inputs", lambda: _hook_prepare_inputs(meta)), ("encode_images", lambda: _hook_encode_images(meta))]
    if train_module is not None:
        steps += [
            ("dataset_index", lambda: _hook_dataset_index(train_module)),
            ("data_module", lambda: _hook_data_module(train_module)),
            ("final_save", lambda: _hook_final_save(train_module)),
            ("trainer_init", _hook_trainer_init),
        ]
    for name, step in steps:
        if name not in _INSTALLED and step():
            _INSTALLED.append(name)
    return list(_INSTALLED)


def installed_hooks() -> list[str]:
    return list(_INSTALLED)
