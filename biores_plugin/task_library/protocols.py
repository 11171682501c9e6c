"""Published scoring protocols for the data sets lmms-eval has no task for (written from their
descriptions and code, not copied): LLaVA-Med's closed yes/no accuracy and open token recall
(VQA-RAD, PathVQA, SLAKE's secondary metrics) and PMC-VQA's nearest-choice matching (MedVInT).
Sources and the deviations from them are in each task README and docs/protocols.md.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

# ----------------------------------------------------------------------------- LLaVA-Med
# microsoft/LLaVA-Med, llava/eval/run_eval.py + eval_metrics/{glossary,evaluate_metrics,utils}.py

#: the punctuation marks the VQA-style normalisation removes or turns into spaces
_LM_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_LM_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")
#: a period not followed by a digit (LLaVA-Med's look-behind is written as a look-ahead, so a
#: preceding digit does not protect it; only a following digit does)
_LM_PERIOD = re.compile(r"\.(?!\d)")
_LM_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_LM_ARTICLES = {"a", "an", "the"}


def llava_med_normalize(text: Any) -> str:
    """LLaVA-Med's answer normalisation (the VQA evaluation's rules).

    A punctuation mark is deleted when it touches a space (or the text has a digit-comma-digit),
    else replaced by a space; periods not followed by a digit go (at most 32, as ``re.sub``'s
    ``count`` receives ``re.UNICODE`` there); lower case; number words become digits; articles
    go; commas go. The contraction table (``dont`` -> ``don't``) is not applied.
    """
    token = str(text or "")
    out = token
    digit_comma = _LM_DIGIT_COMMA.search(token) is not None
    for mark in _LM_PUNCT:
        if f"{mark} " in token or f" {mark}" in token or digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    out = _LM_PERIOD.sub("", out, count=int(re.UNICODE))
    words = [_LM_NUMBER_WORDS.get(w, w) for w in out.lower().split()]
    return " ".join(w for w in words if w not in _LM_ARTICLES).replace(",", "")


def _word_counts(text: str) -> Counter:
    return Counter(text.lower().strip().split())


def llava_med_recall(response: Any, answer: Any) -> float:
    """LLaVA-Med's open-question ``recall``: answer tokens found in the response.

    As ``calculate_f1score``: true positives count the response's occurrences of shared words,
    false negatives the answer's missing words; 0 for an empty response or no overlap.
    """
    candidate = _word_counts(llava_med_normalize(llava_med_normalize(response)))
    reference = _word_counts(llava_med_normalize(llava_med_normalize(answer)))
    if not candidate or not reference:
        return 0.0
    tp = sum(n for w, n in candidate.items() if w in reference)
    fn = sum(n for w, n in reference.items() if w not in candidate)
    return tp / (tp + fn) if tp else 0.0


def llava_med_closed_hit(response: Any, answer: Any) -> float:
    """LLaVA-Med's closed-question ("yes/no accuracy") hit.

    1 when the normalised response contains ``yes`` or ``no`` (as substrings) and contains the
    normalised answer; else 0. LLaVA-Med's loop records nothing for a response that names
    yes/no but not the answer, dropping the question from the denominator; biores counts it 0.
    """
    pred = llava_med_normalize(str(response or "").lower())
    gold = llava_med_normalize(str(answer or "").lower())
    return float(("yes" in pred or "no" in pred) and gold in pred)


# ----------------------------------------------------------------------------- PMC-VQA
# xiaoman-zhang/PMC-VQA, src/MedVInT_TD/test.py (find_most_similar_index) and
# Dataset/PMC_QA_Dataset.py (the "choice" test prompt)


def medvint_prompt(question: Any, choices: Sequence[Any]) -> str:
    """The MedVInT "choice" test prompt: the stored choice strings (with their ``A:`` prefixes)
    concatenated as they are, between the question and ``The Answer is:``."""
    return f"Question: {question}Choices:{''.join(str(c) for c in choices)}The Answer is:"


def nearest_choice(choices: Sequence[Any], text: Any) -> int | None:
    """Index of the choice most similar to ``text`` (``difflib`` ratio; the first of equal best
    wins; ``None`` when nothing is similar at all), as PMC-VQA's ``find_most_similar_index``."""
    best, best_ratio = None, 0.0
    for i, choice in enumerate(choices):
        ratio = difflib.SequenceMatcher(None, str(choice), str(text)).ratio()
        if ratio > best_ratio:
            best, best_ratio = i, ratio
    return best


# ----------------------------------------------------------------------------- extras of wrapped tasks

#: Secondary metrics a wrapped task can get on top of its own (``biores sweep --extras``).
EXTRAS = {"llava_med": ("llava_med_closed_accuracy", "llava_med_open_recall")}


def llava_med_record(response: Any, answer: Any, closed: bool) -> dict[str, Any]:
    """One question under LLaVA-Med's protocol: closed -> yes/no hit, open -> token recall."""
    score = llava_med_closed_hit(response, answer) if closed else llava_med_recall(response, answer)
    return {"score": float(score), "question_type": "closed" if closed else "open", "answer": str(answer)}


def extra_results(name: str | None, doc: dict[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """The extra metrics' per-sample records (SLAKE: its ``answer_type`` says closed / open)."""
    if not name:
        return {}
    if name != "llava_med":
        raise ValueError(f"unknown extras {name!r}; known: {', '.join(EXTRAS)}")
    response = results[0] if results else ""
    closed = str(doc.get("answer_type", "")).strip().upper() == "CLOSED"
    record = llava_med_record(response, doc.get("answer", ""), closed)
    return dict.fromkeys(EXTRAS[name], record)


def extra_aggregation(metric: str) -> Any:
    """The aggregation of an extra metric, or ``None`` when ``metric`` is not one."""
    from .scoring import aggregate_where

    if metric == "llava_med_closed_accuracy":
        return aggregate_where("question_type", "closed")
    if metric == "llava_med_open_recall":
        return aggregate_where("question_type", "open")
    return None
