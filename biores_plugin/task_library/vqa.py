"""The task functions of open/closed VQA over an ``image`` column (VQA-RAD, PathVQA).

Two protocols: LLaVA-Med's (``doc_to_text`` ..., closed = yes/no accuracy, open = token
recall, the question as the prompt, the image first) and biores' fast direct-answer one
(``direct_*``). A task folder's ``utils.py`` re-exports them for its yaml's ``!function`` targets.
"""

from __future__ import annotations

from typing import Any

from .images import aggregate_skipped  # noqa: F401  (re-exported task function)
from .protocols import llava_med_record
from .scoring import (  # noqa: F401  (re-exported task functions)
    CLOSED,
    add_question_type,
    aggregate_accuracy,
    aggregate_closed,
    aggregate_open,
    aggregate_open_recall,
    sweep_fields,
    vqa_results,
)
from .sweep import chat_messages, doc_images, prompt_text, skipped_results, sweep_getattr

__all__ = [
    "aggregate_accuracy",
    "aggregate_closed",
    "aggregate_open",
    "aggregate_open_recall",
    "aggregate_skipped",
    "direct_process_results",
    "doc_to_messages",
    "doc_to_text",
    "doc_to_visual",
    "process_results",
]

# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=add_question_type, image_column="image")


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    return doc_images(doc, "image")


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return prompt_text(doc["question"], lmms_eval_specific_kwargs)


def doc_to_messages(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> list[dict[str, Any]]:
    """LLaVA-Med's order (``model_vqa.py``): the image, then the question."""
    return chat_messages(doc_to_visual(doc), doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """LLaVA-Med's scores: closed questions their yes/no hit, open ones their token recall;
    ``accuracy`` pools the per-question scores (the sweep's single number)."""
    response = results[0] if results else ""
    record = {
        **llava_med_record(response, doc["answer"], doc["question_type"] == CLOSED),
        "response": str(response),
        **sweep_fields(doc),
    }
    return skipped_results(doc, {"accuracy": record, "closed_accuracy": record, "open_recall": record})


def direct_process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """biores' fast direct-answer variant (the pre-protocol house rule, ``_direct_template_yaml``):
    yes/no read from the first word, open answers an exact normalised match."""
    return skipped_results(doc, vqa_results(doc, results))
