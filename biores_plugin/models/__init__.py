"""The one room that turns a checkpoint folder into ``(model, processor)``.

:func:`load` and :func:`checkpoint_kind` read ``config.json``'s ``model_type`` and look it up in
:data:`FAMILIES` (``families.py``); adding a model family is one row there. Every processor it
returns has ``build_prompt`` and ``encode`` (inputs, visual tokens, tower sizes per sample).
Rooms: ``native_llava.py`` (biores' native-resolution LLaVA on transformers),
``llava_checkpoints.py`` (LLaVA-1.5-style folders, stock and biores'), ``qwen_vl.py``,
``stock.py`` (other families with their own classes), ``counting.py`` (what images cost).
"""

from .checkpoint import check_loading_info, folder_config
from .counting import Encoded
from .families import FAMILIES, Family, checkpoint_kind, empty_model, load

__all__ = [
    "FAMILIES",
    "Encoded",
    "Family",
    "check_loading_info",
    "checkpoint_kind",
    "empty_model",
    "folder_config",
    "load",
]
