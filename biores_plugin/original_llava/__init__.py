"""biores on the ORIGINAL LLaVA code base (``llava-torch==1.2.2.post1``; LLaVA-NeXT uses the same hook names).

:mod:`.shims` (compatibility with torch 2.14 / transformers 5) and :mod:`.hooks` (native and mixed
resolution: :mod:`.model_hooks`, :mod:`.trainer_hooks`, over :mod:`.state` and :mod:`.processor`) patch
through :mod:`biores_plugin.patching` and are removable; :mod:`.resolution` checks the flags and
:mod:`.train` is ``python -m biores_plugin.original_llava.train <llava flags>``. Install the package with
``pip install --no-deps llava-torch==1.2.2.post1``; for inference call :func:`apply` once. Details: docs/llava.md.
"""

from __future__ import annotations

from biores_plugin.original_llava.shims import LLAVA_INSTALL

__all__ = ["LLAVA_INSTALL", "apply", "remove"]


def apply() -> dict[str, list[str]]:
    """Apply the compatibility shims and install the native hooks; ``{"shims": [...], "hooks": [...]}``."""
    from biores_plugin.original_llava import hooks, shims

    train_module = shims.import_llava_train()
    installed = hooks.install_hooks(train_module)
    return {"shims": shims.applied_shims(), "hooks": installed}


def remove() -> dict[str, list[str]]:
    """Undo :func:`apply`: llava's (and transformers') own objects are back; the attributes reverted."""
    from biores_plugin.original_llava import hooks, shims

    return {"hooks": hooks.uninstall_hooks(), "shims": shims.revert_shims()}
