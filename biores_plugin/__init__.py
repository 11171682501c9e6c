"""biores: native- and mixed-resolution biomedical multimodal LLMs for lmms-eval and LLaVA.

The data flows image (``image_io``) -> resolution policy (``resolution``) -> processor
(``processing``) -> vision tower (``vision``) -> language model (``models``); ``eval``,
``train``, ``llava``, ``report`` and ``demo`` use them. README.md's layout table names every room.
"""

__version__ = "0.1.0"


def register() -> None:
    """Register biores with transformers (image processors, the ``biores_varlen`` attention).

    Nothing registers at import; the entry points (``biores``, ``biores-train``, lmms-eval's
    plugin hook, the LLaVA entry) call this once. Idempotent.
    """
    from .processing import register_auto_classes
    from .vision import register as register_attention

    register_auto_classes()
    register_attention()
