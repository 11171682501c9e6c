"""Training hooks on ``llava.train.train``: dataset index, data module, trainer and saves.

Each ``hook_*(train_module)`` wraps one name of LLaVA's training module (group ``"llava.hooks"``)
and returns False when it does not exist there. Native sessions only (an active
:class:`~biores_plugin.original_llava.state.NativeState`); the table is in docs/llava.md.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from biores_plugin.original_llava.points import HOOK_GROUP, wrap_point
from biores_plugin.original_llava.processor import NativeLlavaImageProcessor
from biores_plugin.original_llava.state import active_state, config_extras, log_event, sample_index

__all__ = ["hook_data_module", "hook_dataset_index", "hook_final_save", "hook_trainer_init", "save_resolution"]


def _dataset_getitem(orig):
    @functools.wraps(orig)
    def __getitem__(self, i):
        with sample_index(i):  # the mixed-resolution draw of this sample depends on (seed, i) only
            return orig(self, i)

    return __getitem__


def hook_dataset_index(train_module: Any) -> bool:
    dataset_cls = getattr(train_module, "LazySupervisedDataset", None)
    return wrap_point(dataset_cls, "__getitem__", _dataset_getitem, group=HOOK_GROUP, label="dataset_index")


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


def _data_module(orig):
    @functools.wraps(orig)
    def make_supervised_data_module(*args, **kwargs):
        state = active_state()
        data_args = kwargs.get("data_args", args[1] if len(args) > 1 else None)
        native = state is not None and getattr(data_args, "image_aspect_ratio", None) == "native"
        base = getattr(data_args, "image_processor", None)
        if native and base is not None and not isinstance(base, NativeLlavaImageProcessor):
            data_args.image_processor = NativeLlavaImageProcessor(base, state)
        module = orig(*args, **kwargs)
        if native and isinstance(module, dict) and module.get("data_collator") is not None:
            module["data_collator"] = _ListImagesCollator(module["data_collator"])
        return module

    return make_supervised_data_module


def hook_data_module(train_module: Any) -> bool:
    return wrap_point(train_module, "make_supervised_data_module", _data_module, group=HOOK_GROUP, label="data_module")


def save_resolution(output_dir: str | Path) -> None:
    """``biores_config.json`` of the active session into ``output_dir`` (when it is a folder)."""
    state = active_state()
    if state is not None and output_dir and Path(output_dir).is_dir():
        state.resolution.save_pretrained(output_dir)


def _final_save(orig):
    @functools.wraps(orig)
    def safe_save_model_for_hf_trainer(trainer, output_dir, *args, **kwargs):
        result = orig(trainer, output_dir, *args, **kwargs)
        state = active_state()
        if getattr(trainer.args, "should_save", True):
            save_resolution(output_dir)
            if state is not None:
                log_event("saved", output_dir=str(output_dir), biores=state.resolution.to_dict())
        return result

    return safe_save_model_for_hf_trainer


def hook_final_save(train_module: Any) -> bool:
    return wrap_point(train_module, "safe_save_model_for_hf_trainer", _final_save, group=HOOK_GROUP, label="final_save")


def _checkpoint_callback():
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class BioresCheckpointCallback(TrainerCallback):
        """Write ``biores_config.json`` into every ``checkpoint-N`` folder the trainer saves."""

        def on_save(self, args, state, control, **kwargs):
            if getattr(args, "should_save", True):
                save_resolution(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            return control

    return BioresCheckpointCallback


def _prepare_model_config(model: Any) -> None:
    """Before the trainer starts: the session's config extras, the tower's patch size, ``config.biores``."""
    state = active_state()
    config = getattr(model, "config", None)
    for key, value in config_extras().items():
        if config is not None and getattr(config, key, None) is None:
            setattr(config, key, value)
    if state is not None and model is not None:
        tower = model.get_vision_tower() if hasattr(model, "get_vision_tower") else None
        patch = getattr(getattr(tower, "config", None), "patch_size", None)
        if isinstance(patch, int):
            state.set_patch_size(patch)
        if config is not None and getattr(config, "image_aspect_ratio", None) == "native":
            config.biores = state.resolution.to_dict()


def _native_trainer(llava_trainer: type) -> type:
    class BioresLLaVATrainer(llava_trainer):
        """LLaVA's trainer (shims included); a native session's model config and checkpoints get ``biores``."""

        def __init__(self, *args, **kwargs):
            _prepare_model_config(kwargs.get("model", args[0] if args else None))
            super().__init__(*args, **kwargs)
            if active_state() is not None:
                self.add_callback(_checkpoint_callback())

    return BioresLLaVATrainer


def hook_trainer_init(train_module: Any) -> bool:
    """``train_module.LLaVATrainer`` (what ``train()`` builds) becomes a subclass.

    A subclass rather than a wrapped ``LLaVATrainer.__init__``: that attribute belongs to the
    ``trainer_tokenizer_kwarg`` shim, and the patching registry holds one patch per attribute.
    """
    return wrap_point(train_module, "LLaVATrainer", _native_trainer, group=HOOK_GROUP, label="trainer_init")
