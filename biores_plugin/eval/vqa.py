"""The task functions of open/closed VQA over an ``image`` column (VQA-RAD, PathVQA).

A task folder's ``utils.py`` re-exports them for its yaml's ``!function utils.<name>`` targets.
"""

from __future__ import annotations

from typing import Any

from .scoring import (  # noqa: F401  (re-exported task functions)
    add_question_type,
    aggregate_accuracy,
    aggregate_closed,
    aggregate_open,
    aggregate_open_recall,
    vqa_results,
)
from .sweep import chat_messages, prompt_text, sweep_getattr, sweep_image

__all__ = [
    "aggregate_accuracy", "aggregate_closed", "aggregate_open", "aggregate_open_recall",
    "doc_to_messages", "doc_to_text", "doc_to_visual", "process_results",
]

# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=add_question_type, image_column="image")


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    return [sweep_image(doc["image"], int(doc["biores_resolution"]))]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt_text(doc["question"], lmms_eval_specific_kwargs)


def doc_to_messages(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> list[dict[str, Any]]:
    return chat_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


process_results = vqa_results
