"""The study's evaluation protocol as a preset: ``med_eval`` (cliangyu/med_eval, ``infer_eval.py``).

Written from that code's behaviour, not copied: system prompt "You are a biomedical expert.",
the image then the question with nothing between (uBench: a newline, "Answer with a single
letter, no extra details.", "Question: ...", options lettered "A. ..."), sampling at temperature
0.2 with 128 new tokens. Closed questions (gold answer yes/no) score 1 when the lowercased
response contains the gold word; open ones LLaVA-Med's ``calculate_f1score`` (F1, recall) on the
normalised words; uBench the first letter of the stripped, uppercased response. Deviations (and
why) are in ``tasks/med_eval/README.md``. Task folder: ``tasks/med_eval`` (``med_eval_*``);
``biores run --protocol med_eval`` sets the system prompt and sampling for its wrapper.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..errors import BioresConfigError
from .protocols import llava_med_normalize

SYSTEM_PROMPT = "You are a biomedical expert."
TEMPERATURE = 0.2
MAX_NEW_TOKENS = 128
UBENCH_INSTRUCTION = "Answer with a single letter, no extra details."
#: lmms-eval wrappers whose system prompt is a model arg (their simple variants ignore the task's messages)
SYSTEM_PROMPT_ARG = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl"}
GEN_KWARGS = f"temperature={TEMPERATURE},max_new_tokens={MAX_NEW_TOKENS},do_sample=True,top_p=1.0"


# --------------------------------------------------------------------------- scoring


def calculate_f1score(candidate: Any, reference: Any) -> tuple[float, float, float]:
    """``(f1, precision, recall)`` as LLaVA-Med's ``calculate_f1score`` (which med_eval imports):
    both texts normalised once; true positives count the candidate's occurrences of shared words;
    0s for an empty side or no overlap."""
    cand = Counter(llava_med_normalize(candidate).lower().strip().split())
    ref = Counter(llava_med_normalize(reference).lower().strip().split())
    if not cand or not ref:
        return 0.0, 0.0, 0.0
    tp = sum(n for w, n in cand.items() if w in ref)
    fp = sum(n for w, n in cand.items() if w not in ref)
    fn = sum(n for w, n in ref.items() if w not in cand)
    if tp == 0:
        return 0.0, 0.0, 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall), precision, recall


def is_closed(answer: Any) -> bool:
    return str(answer).lower() in ("yes", "no")


def closed_hit(response: Any, answer: Any) -> float:
    """med_eval's closed score: the gold yes/no is a substring of the lowercased response
    (so "not", "know", "nodule" count as "no": the source's rule, kept)."""
    return float(str(answer).lower() in str(response).lower())


def ubench_letter(response: Any) -> str:
    text = str(response).strip().upper()
    return text[0] if text else ""


# --------------------------------------------------------------------------- task functions (VQA-RAD, PathVQA, SLAKE)


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """The image as given (no resizing: the budget is the model's), in RGB as med_eval converts it;
    a bad image fails in one line naming the doc (biores' checked loader)."""
    from . import images
    from .sweep import _load_cell

    cell = doc["image"]
    source = images.cell_source("image", cell, None)
    image = images.checked(
        doc.get("biores_task", "med_eval"), doc.get("biores_doc_id", -1), source, lambda: _load_cell(cell)
    )
    image = images.placeholder() if image is None else image
    return [image if image.mode == "RGB" else image.convert("RGB")]


def doc_to_text(doc: dict[str, Any]) -> str:
    return str(doc["question"])


def doc_to_messages(doc: dict[str, Any]) -> list[dict[str, Any]]:
    parts = [{"type": "image", "url": im} for im in doc_to_visual(doc)]
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": parts + [{"type": "text", "text": doc_to_text(doc)}]},
    ]


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    """Closed questions give ``closed_accuracy``; open ones ``open_f1`` and ``open_recall``
    (each metric averages over its own questions, as med_eval's ``evaluate_predictions``)."""
    response = results[0] if results else ""
    if is_closed(doc["answer"]):
        return {"closed_accuracy": closed_hit(response, doc["answer"])}
    f1, _, recall = calculate_f1score(str(response).lower(), str(doc["answer"]).lower())
    return {"open_f1": f1, "open_recall": recall}


# --------------------------------------------------------------------------- uBench


def ubench_process_docs(dataset: Any) -> Any:
    """One row per (image, question type): every entry of ``questions``, as med_eval asks them."""

    def expand(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"image": [], "question_type": [], "question": [], "options": [], "answer_letter": []}
        for image, questions in zip(batch["image"], batch["questions"]):
            for q_type, q in (questions or {}).items():
                if not q:
                    continue
                out["image"].append(image)
                out["question_type"].append(q_type)
                out["question"].append(q["question"])
                out["options"].append(list(q["options"]))
                out["answer_letter"].append(chr(65 + int(q["answer_idx"])))
        return out

    return dataset.map(expand, batched=True, remove_columns=dataset.column_names)


def ubench_doc_to_text(doc: dict[str, Any]) -> str:
    options = "\n".join(f"{chr(65 + i)}. {opt}" for i, opt in enumerate(doc["options"]))
    return f"\n{UBENCH_INSTRUCTION}\nQuestion: {doc['question']}\n{options}"


def ubench_doc_to_messages(doc: dict[str, Any]) -> list[dict[str, Any]]:
    parts = [{"type": "image", "url": im} for im in doc_to_visual(doc)]
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": parts + [{"type": "text", "text": ubench_doc_to_text(doc)}]},
    ]


def ubench_process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    hit = float(ubench_letter(results[0] if results else "") == doc["answer_letter"])
    return {"accuracy": hit, f"accuracy_{doc['question_type']}": hit}


# --------------------------------------------------------------------------- biores run --protocol med_eval


def protocol_flags(protocol: str, model: str, model_args: str, flags: list[str]) -> tuple[str, list[str]]:
    """``(model_args, lmms-eval flags)`` of one budget's run under the protocol."""
    if protocol != "med_eval":
        raise BioresConfigError(f"unknown --protocol {protocol!r} (known: med_eval)")
    if "--gen_kwargs" in flags:
        raise BioresConfigError(
            "--protocol med_eval sets --gen_kwargs itself (temperature 0.2, 128 new tokens); drop --gen_kwargs"
        )
    if model in SYSTEM_PROMPT_ARG:
        model_args = f"{model_args},system_prompt={SYSTEM_PROMPT}"
    out = [*flags, "--gen_kwargs", GEN_KWARGS]
    if model == "qwen3_vl" and "--force_simple" not in out:  # its chat variant prepends a second system turn
        out.append("--force_simple")
    if "--seed" not in out:
        out += ["--seed", "0,1234,1234,1234"]
    return model_args, out
