"""Scoring shared by the biores tasks: answer normalisation, open/closed VQA, multiple choice.

Per-sample records carry ``score`` plus the sweep's size fields, so ``biores report`` can read
both from lmms-eval's samples log.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .sweep import size_record

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CLOSED, OPEN = "closed", "open"


_PUNCT = str.maketrans({c: " " for c in string.punctuation})
_ARTICLES = {"a", "an", "the"}
YES = {"yes", "y", "true", "yeah", "yep", "present", "positive"}
NO = {"no", "n", "false", "nope", "absent", "negative"}


def normalize_answer(text: Any) -> str:
    """Lower-case, drop punctuation and articles, squeeze spaces (VQA-style)."""
    words = str(text or "").lower().translate(_PUNCT).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def yes_no(text: Any) -> str | None:
    """``"yes"`` / ``"no"`` if the answer starts with one, else ``None``."""
    words = normalize_answer(text).split()
    if not words:
        return None
    if words[0] in YES:
        return "yes"
    if words[0] in NO:
        return "no"
    return None


def choose_option(response: Any, options: Sequence[str], letters: bool = False) -> str | None:
    """Which option a free-text response names: a leading letter (``B``, ``(B)``, ``B.``) when
    ``letters``, else the option whose normalised text appears first in the response."""
    raw = str(response or "").strip()
    if letters:
        # "B", "(B)", "B.", "b)" name an option; a lower-case word such as "a large mass" does not
        m = re.match(r"^\(?([A-Z])[\)\.:\s]", raw + " ") or re.match(r"^\(?([a-z])[\)\.:]", raw)
        if m:
            index = ord(m.group(1).upper()) - ord("A")
            if 0 <= index < len(options):
                return options[index]
    norm = f" {normalize_answer(raw)} "
    best, best_pos = None, None
    for option in options:
        key = normalize_answer(option)
        if not key:
            continue
        pos = norm.find(f" {key} ")
        if pos >= 0 and (
            best_pos is None or pos < best_pos or (pos == best_pos and len(key) > len(normalize_answer(best)))
        ):
            best, best_pos = option, pos
    return best


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def aggregate_score(results: Sequence[Any]) -> float:
    """Mean of ``score`` over per-sample dicts (or plain numbers); NaN-free for empty lists."""
    scores = [r["score"] if isinstance(r, dict) else float(r) for r in results if r is not None]
    return mean(scores) if scores else 0.0


def aggregate_where(key: str, value: Any) -> Callable[[Sequence[dict]], float]:
    """Aggregation over the samples whose ``key`` equals ``value`` (0 when there are none)."""

    def aggregate(results: Sequence[dict]) -> float:
        picked = [r["score"] for r in results if isinstance(r, dict) and r.get(key) == value]
        return mean(picked) if picked else 0.0

    aggregate.__name__ = f"aggregate_{key}_{value}"
    return aggregate


def sweep_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The size record plus the raw ``biores_*`` columns (lmms-eval 0.7.3 drops ``doc`` from the samples log)."""
    return {**size_record(doc), **{k: v for k, v in doc.items() if k.startswith("biores_")}}


# --------------------------------------------------------------------------- open / closed VQA


def closed_by_answer(answer: Any) -> bool:
    """Yes/no answers make a question closed (the VQA-RAD / PathVQA card definition)."""
    return normalize_answer(answer) in ("yes", "no")


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
        **sweep_fields(doc),
    }


def vqa_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """``process_results`` of the open/closed VQA tasks (one record per metric)."""
    response = results[0] if results else ""
    exact = vqa_record(doc, response, vqa_correct(response, doc["answer"], doc["question_type"]))
    recall = vqa_record(doc, response, token_recall(response, doc["answer"]))
    return {"accuracy": exact, "closed_accuracy": exact, "open_accuracy": exact, "open_recall": recall}


# --------------------------------------------------------------------------- multiple choice


def lettered(options: Sequence[Any], style: str = "{letter}. {text}") -> str:
    """Options one per line, ``A. first`` (or another ``style``)."""
    return "\n".join(style.format(letter=LETTERS[i], text=str(text).strip()) for i, text in enumerate(options))


def choice_record(
    doc: dict[str, Any], response: Any, options: Sequence[str], correct: int, **extra: Any
) -> dict[str, Any]:
    """A multiple-choice sample: the option the response names (letter first) against ``correct``."""
    options = [str(o) for o in options]
    chosen = choose_option(response, options, letters=True)
    return {
        **extra,
        "score": float(chosen is not None and chosen == options[correct]),
        "answer": LETTERS[correct],
        "chosen": None if chosen is None else LETTERS[options.index(chosen)],
        "response": str(response),
        **sweep_fields(doc),
    }


# --------------------------------------------------------------------------- aggregations

aggregate_accuracy = aggregate_score
aggregate_closed = aggregate_where("question_type", CLOSED)
aggregate_open = aggregate_where("question_type", OPEN)
aggregate_open_recall = aggregate_where("question_type", OPEN)


def add_question_type(dataset: Any, closed: list[bool] | None = None) -> Any:
    """Add a ``question_type`` column (``closed`` / ``open``); by answer unless given."""
    if closed is None:
        closed = [closed_by_answer(a) for a in dataset["answer"]]
    if "question_type" in dataset.column_names:
        dataset = dataset.remove_columns("question_type")
    return dataset.add_column("question_type", [CLOSED if c else OPEN for c in closed])
