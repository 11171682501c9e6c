"""biores_vqa_rad: VQA-RAD (radiology VQA) as an inference-resolution sweep.

Data: ``flaviagiammarino/vqa-rad`` on the Hugging Face hub (parquet, ``data/train-*`` and
``data/test-*``), or a local copy named by ``$BIORES_VQA_RAD_PATH`` (see README.md).

Schema (verified from the dataset card, ``dataset_info``): three columns, ``image``
(``datasets.Image``; MedPix radiographs / CT / MRI, mostly grayscale, a few hundred px),
``question`` (str) and ``answer`` (str). Splits: ``train`` (1,793 rows) and ``test`` (451 rows);
the sweep uses ``test``. The card has no answer-type column: following the card's leaderboard
definition ("Close-ended accuracy ... for the subset of binary yes/no questions"), a question is
*closed* when its answer is ``yes`` / ``no`` and *open* otherwise.

Metrics (the card's three leaderboard metrics plus one):

* ``closed_accuracy``: the first word of the response, read as yes/no, equals the answer;
* ``open_accuracy``: exact match after VQA normalisation (lower case, no punctuation, no
  articles, squeezed spaces);
* ``accuracy``: both together (overall accuracy, the metric the sweep group averages);
* ``open_recall``: secondary, the share of the answer's tokens found in the response (the
  recall-style score LLaVA-Med reports for open questions); lenient with verbose answers.

This module also holds the open/closed scoring that ``biores_slake`` and ``biores_pathvqa``
reuse (:func:`vqa_record`, :func:`vqa_results` and the aggregations).
"""

from __future__ import annotations

from typing import Any

from biores_plugin.lmms_tasks import (
    aggregate_score,
    aggregate_where,
    chat_messages,
    normalize_answer,
    size_record,
    sweep_getattr,
    sweep_image,
    yes_no,
)

CLOSED, OPEN = "closed", "open"


def closed_by_answer(answer: Any) -> bool:
    """Yes/no answers make a question closed (the VQA-RAD / PathVQA card definition)."""
    return normalize_answer(answer) in ("yes", "no")


def add_question_type(dataset: Any, closed: list[bool] | None = None) -> Any:
    """Add a ``question_type`` column (``closed`` / ``open``); by answer unless given."""
    if closed is None:
        closed = [closed_by_answer(a) for a in dataset["answer"]]
    if "question_type" in dataset.column_names:
        dataset = dataset.remove_columns("question_type")
    return dataset.add_column("question_type", [CLOSED if c else OPEN for c in closed])


def token_recall(response: Any, answer: Any) -> float:
    """Share of the (normalised) answer tokens that occur in the response."""
    truth = set(normalize_answer(answer).split())
    if not truth:
        return 0.0
    return len(truth & set(normalize_answer(response).split())) / len(truth)


def vqa_correct(response: Any, answer: Any, question_type: str) -> bool:
    """Closed yes/no questions compare the yes/no reading of the response; everything else
    (open questions, and closed questions whose answer is not yes/no, as in SLAKE's
    "which is bigger, A or B") is an exact match after normalisation."""
    truth = normalize_answer(answer)
    if question_type == CLOSED and truth in ("yes", "no"):
        return yes_no(response) == truth
    return bool(truth) and normalize_answer(response) == truth


def vqa_record(doc: dict[str, Any], response: Any, score: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": doc.get("id", doc.get("qid")),
        "score": float(score),
        "question_type": doc["question_type"],
        "answer": str(doc["answer"]),
        "response": str(response),
        **extra,
        **size_record(doc),
        **{k: v for k, v in doc.items() if k.startswith("biores_")},  # lmms-eval 0.7.3 drops "doc" from the samples log
    }


def vqa_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """``process_results`` of the open/closed VQA tasks (one record per metric)."""
    response = results[0] if results else ""
    exact = vqa_record(doc, response, vqa_correct(response, doc["answer"], doc["question_type"]))
    recall = vqa_record(doc, response, token_recall(response, doc["answer"]))
    return {"accuracy": exact, "closed_accuracy": exact, "open_accuracy": exact, "open_recall": recall}


aggregate_accuracy = aggregate_score
aggregate_closed = aggregate_where("question_type", CLOSED)
aggregate_open = aggregate_where("question_type", OPEN)
aggregate_open_recall = aggregate_where("question_type", OPEN)


def vqa_doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{str(doc['question']).strip()}{kwargs.get('post_prompt', '')}"


# ----------------------------------------------------------------------------- VQA-RAD


def _prepare(dataset: Any) -> Any:
    return add_question_type(dataset)


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=_prepare, image_column="image")


def doc_to_visual(doc):
    return [sweep_image(doc["image"], int(doc["biores_resolution"]))]


doc_to_text = vqa_doc_to_text


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


process_results = vqa_results
