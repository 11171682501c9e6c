"""Native- and mixed-resolution hooks around the original LLaVA code (llava-torch 1.2.2, LLaVA-NeXT).

:func:`install_hooks` wraps every hook point the installed llava flavour has (the model and
inference points always, the training points of ``train_module`` when given) through
:mod:`biores_plugin.patching`, group ``"llava.hooks"``; :func:`uninstall_hooks` puts llava's own
objects back. What each hook does: docs/llava.md. The session state, processor and image list
are re-exported here for ``biores_plugin.original_llava.train``.
"""

from __future__ import annotations

from typing import Any

from biores_plugin.original_llava import model_hooks, points, trainer_hooks
from biores_plugin.original_llava.processor import NativeImages, NativeLlavaImageProcessor, native_processor_for
from biores_plugin.original_llava.state import LOG_NAME, LOG_PREFIX, NativeState, activate, active_state, log_event

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
    "uninstall_hooks",
]


def install_hooks(train_module: Any | None = None) -> list[str]:
    """Install every hook whose hook point exists (idempotent); returns the installed names."""
    model_hooks.hook_process_images()
    model_hooks.hook_tower_forward()
    arch = points.import_or_none("llava.model.llava_arch")
    meta = getattr(arch, "LlavaMetaForCausalLM", None)
    if meta is not None:
        model_hooks.hook_prepare_inputs(meta)
        model_hooks.hook_encode_images(meta)
    if train_module is not None:
        trainer_hooks.hook_dataset_index(train_module)
        trainer_hooks.hook_data_module(train_module)
        trainer_hooks.hook_final_save(train_module)
        trainer_hooks.hook_trainer_init(train_module)
    return installed_hooks()


def uninstall_hooks() -> list[str]:
    """Put back every object the hooks replaced; returns the attributes reverted."""
    return points.revert(points.HOOK_GROUP)


def installed_hooks() -> list[str]:
    return points.installed(points.HOOK_GROUP)
