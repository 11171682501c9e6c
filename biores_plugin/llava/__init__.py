"""biores on the ORIGINAL LLaVA code base (``llava-torch==1.2.2.post1``; LLaVA-NeXT uses the same hook names).

- :mod:`.shims`      version-gated compatibility shims (llava on torch 2.14 / transformers 5)
- :mod:`.hooks`      native- and mixed-resolution hooks (dataset, collator, tower, model, ``process_images``)
- :mod:`.resolution` the biores flags: validation and the reproducible mixed-resolution draw
- :mod:`.train`      ``python -m biores_plugin.llava.train <llava flags>`` (the ``train_mem.py`` pattern)

Install the original package without letting it downgrade torch / transformers::

    pip install --no-deps llava-torch==1.2.2.post1

For inference with a native checkpoint, call :func:`apply` once before using ``llava.mm_utils.process_images``
or the model: it applies the shims and installs the hooks (idempotent).
"""

from __future__ import annotations

from biores_plugin.llava.shims import LLAVA_INSTALL

__all__ = ["LLAVA_INSTALL", "apply"]


def apply() -> dict[str, list[str]]:
    """Apply the compatibility shims and install the native hooks; ``{"shims": [...], "hooks": [...]}``."""
    from biores_plugin.llava import hooks, shims

    train_module = shims.import_llava_train()
    installed = hooks.install_hooks(train_module)
    return {"shims": shims.applied_shims(), "hooks": installed}
