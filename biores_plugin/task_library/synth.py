"""The task functions of ``biores_synth`` (the offline synthetic benchmark), for its ``utils.py``.

The prompt is ``biores_plugin.synth.prompts``'s, the one training uses too.
"""

from __future__ import annotations

from ..synth.prompts import question_prompt
from .images import aggregate_skipped  # noqa: F401  (re-exported task function)
from .scoring import aggregate_score, aggregate_where, choose_option, normalize_answer
from .sweep import chat_messages, doc_images, size_record, skipped_results, sweep_getattr

# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(image_column="image")


def doc_to_visual(doc):
    return doc_images(doc, "image")


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return question_prompt(doc, lmms_eval_specific_kwargs or {})


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc), doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc, results):
    chosen = choose_option(results[0] if results else "", doc["options"])
    record = {
        "id": doc["id"],
        "score": float(chosen is not None and normalize_answer(chosen) == normalize_answer(doc["answer"])),
        "question_type": doc["question_type"],
        "generator": doc["generator"],
        "critical_scale_px": float(doc["critical_scale_px"]),
        **size_record(doc),
    }
    return skipped_results(doc, {"accuracy": record, "fine_accuracy": record, "coarse_accuracy": record})


aggregate_accuracy = aggregate_score
aggregate_fine = aggregate_where("question_type", "fine")
aggregate_coarse = aggregate_where("question_type", "coarse")
