"""biores_microvqa_direct: MicroVQA (microscopy research VQA), biores' fast direct-answer sweep.

The protocol sweep ``biores_microvqa`` is lmms-eval's own ``microvqa`` task wrapped
(``biores_plugin.task_authoring.wrap``: the owners' chain-of-thought prompt, numbered options, sampled
up to 2,048 tokens); this folder keeps the lettered direct-answer variant beside it.

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
(a copy with only ``train`` loads it as ``test``: ``biores_plugin.lmms_plugin.plugin.RENAMED_SPLITS``).

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

from biores_plugin.task_library.images import aggregate_skipped  # noqa: F401  (yaml !function target)
from biores_plugin.task_library.scoring import LETTERS, aggregate_score, choice_record, lettered
from biores_plugin.task_library.sweep import (
    cell_size,
    chat_messages,
    doc_images,
    prompt_text,
    skipped_results,
    sweep_getattr,
)


def _largest_sizes(dataset: Any) -> list[tuple[int, int]]:
    """Per row, the header size of its largest image (no pixel decoding)."""
    from biores_plugin.task_library.sweep import undecoded

    raw, _ = undecoded(dataset)
    return [
        max((cell_size(c) for c in cells or []), key=lambda s: s[0] * s[1], default=(0, 0))
        for cells in raw["images_list"]
    ]


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(image_column=None, sizes_fn=_largest_sizes)


def doc_to_visual(doc):
    return doc_images(doc, "images_list")


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return prompt_text(f"{str(doc['question']).strip()}\n{lettered(doc['choices'])}", lmms_eval_specific_kwargs)


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc), doc_to_text(doc, lmms_eval_specific_kwargs))


def doc_to_target(doc):
    return LETTERS[int(doc["correct_index"])]


def process_results(doc, results):
    response = results[0] if results else ""
    record = choice_record(
        doc,
        response,
        doc["choices"],
        int(doc["correct_index"]),
        key_question=doc.get("key_question"),
        task=doc.get("task_str", doc.get("task")),
    )
    return skipped_results(doc, {"accuracy": record})


aggregate_accuracy = aggregate_score
