"""biores_microvqa: MicroVQA (microscopy research VQA, multiple choice) as a resolution sweep.

Data: ``jmhb/microvqa`` on the Hugging Face hub (parquet under ``data/``), or a local copy
named by ``$BIORES_MICROVQA_PATH`` (see README.md).

Schema (verified from the dataset card, ``dataset_info``): one row per question with
``key_question``, ``key_image`` (ints), ``images_list`` (a *sequence* of ``datasets.Image``:
a question may show several micrographs), ``question`` (str, the full question stem),
``choices`` (sequence of str), ``correct_index`` (int, 0-based position in ``choices``),
``correct_answer`` (str), ``task`` / ``task_str`` (the benchmark's three task families),
plus the question-generation columns (``question_0`` .. ``question_3``, ``choices_1`` ..,
``context_*``, ``images_source``, ``image_caption``, ``key_person``). Split: ``test`` (1,042
rows) on the current card; older revisions of the repository named the same rows ``train``
(a local copy with only ``train`` needs ``test_split: train``; not changed here).

Protocol: shuffle-free. The choices are shown in their stored order, lettered ``A.``, ``B.``,
...; the correct letter is ``choices[correct_index]``'s. Metric: multiple-choice ``accuracy``
(the leading letter of the response, or else the first choice text it names, must be the
correct choice).

Resolution columns: every image of a row is swept (longest side capped, never upsampled); the
``biores_orig_*`` / ``biores_eff_*`` columns record the row's *largest* image (by area), the one
a cap affects most.
"""

from __future__ import annotations

from typing import Any

from biores_plugin.lmms_tasks import (
    aggregate_score,
    choose_option,
    size_record,
    sweep_getattr,
    sweep_image,
)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _largest_sizes(dataset: Any) -> list[tuple[int, int]]:
    """Per row, the header size of its largest image (no pixel decoding)."""
    from datasets import Image as HFImage
    from datasets import List

    from biores_plugin.image_io import image_size

    raw = dataset.cast_column("images_list", List(HFImage(decode=False)))
    sizes = []
    for cells in raw["images_list"]:
        best = (0, 0)
        for cell in cells or []:
            if cell is None:
                continue
            data = cell.get("bytes") if isinstance(cell, dict) else None
            w, h = image_size(data if data else cell["path"])
            if w * h > best[0] * best[1]:
                best = (w, h)
        sizes.append(best)
    return sizes


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(image_column=None, sizes_fn=_largest_sizes)


def doc_to_visual(doc):
    resolution = int(doc["biores_resolution"])
    return [sweep_image(image, resolution) for image in doc["images_list"] if image is not None]


def lettered(choices) -> str:
    return "\n".join(f"{LETTERS[i]}. {str(text).strip()}" for i, text in enumerate(choices))


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    question = str(doc["question"]).strip()
    return f"{kwargs.get('pre_prompt', '')}{question}\n{lettered(doc['choices'])}{kwargs.get('post_prompt', '')}"


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    content = [{"type": "image", "url": image} for image in doc_to_visual(doc)]
    content.append({"type": "text", "text": doc_to_text(doc, lmms_eval_specific_kwargs)})
    return [{"role": "user", "content": content}]


def doc_to_target(doc):
    return LETTERS[int(doc["correct_index"])]


def process_results(doc, results):
    response = results[0] if results else ""
    choices = [str(c) for c in doc["choices"]]
    index = int(doc["correct_index"])
    chosen = choose_option(response, choices, letters=True)
    record = {
        "key_question": doc.get("key_question"),
        "score": float(chosen is not None and chosen == choices[index]),
        "answer": LETTERS[index],
        "chosen": None if chosen is None else LETTERS[choices.index(chosen)],
        "task": doc.get("task_str", doc.get("task")),
        "response": str(response),
        **size_record(doc),
        **{k: v for k, v in doc.items() if k.startswith("biores_")},  # lmms-eval 0.7.3 drops "doc" from the samples log
    }
    return {"accuracy": record}


aggregate_accuracy = aggregate_score
