"""biores_ubench: uBench / μ-Bench perception, fine-grained questions, as a resolution sweep.

Data: ``jnirschl/uBench`` on the Hugging Face hub, or a local copy named by
``$BIORES_UBENCH_PATH`` (see README.md).

Schema. The repository stores the perception set as ``datasets`` Arrow shards,
``perception/0.1.0/ubench-test-0000N-of-00007.arrow`` plus ``dataset_info.json``: one split,
``test`` (17,315 images, one row each). Columns: ``image_id``, ``image``, ``label`` /
``label_name``, ``dataset`` (source data set; null for some rows), ``domain``, ``subdomain``,
``modality``, ``submodality``, ``stain``, ... and ``questions``: a struct keyed by question type
(``classification``, ``domain``, ``modality``, ``stain``, ``subdomain``, ``submodality``), each
``{question, options, answer, answer_idx, id, name}`` or null.

Rows: each image's ``classification`` question (fine-grained perception), restricted to the
authors' fine-grained data-set list (``biores_plugin.eval.evllm.DATASETS``, from
``Ale9806/eVLLM``); a null ``dataset`` is resolved from the named rows asking the same options,
else kept as ``dataset_null:<n>`` and reported so. The coarse questions are the
``biores_ubench_coarse`` folder's.

Protocol (``_default_template_yaml``): eVLLM's prompt and ``check_prediction``
(``biores_plugin.eval.evllm``). ``_direct_template_yaml``: biores' own variant on the same rows
(instruction last, the leading letter or else the first option text named).
"""

from __future__ import annotations

from typing import Any

from biores_plugin.errors import BioresConfigError
from biores_plugin.eval.evllm import (
    FINE,
    POSTHOC_DROPPED,
    check_prediction,
    correct_index,
    gold,
    in_paper,
    prompt,
    resolve_datasets,
    usable,
)
from biores_plugin.eval.images import aggregate_skipped  # noqa: F401  (yaml !function target)
from biores_plugin.eval.scoring import LETTERS, aggregate_score, choice_record, lettered, mean, sweep_fields
from biores_plugin.eval.sweep import chat_messages, doc_images, prompt_text, skipped_results, sweep_getattr

QUESTION = FINE
_correct_index = correct_index
_usable = usable


def sources(dataset: Any) -> list[str]:
    """Each row's source data set, null ones resolved (``resolve_datasets``)."""
    names = (
        [str(d) if d else "" for d in dataset["dataset"]] if "dataset" in dataset.column_names else [""] * len(dataset)
    )
    fine = [(qs or {}).get(QUESTION) for qs in dataset.select_columns(["questions"])["questions"]]
    return resolve_datasets(names, [q["options"] if _usable(q) else None for q in fine])


def flatten(
    dataset: Any, keep: list[int], questions: list[dict], resolved: list[str], extra: dict | None = None
) -> Any:
    """``dataset`` rows ``keep`` (repeats allowed) with ``question`` / ``options`` / ``answer_idx``
    / ``source_dataset`` from ``questions`` (one per kept row)."""
    columns = {
        "question": [str(q["question"]) for q in questions],
        "options": [[str(o) for o in q["options"]] for q in questions],
        "answer_idx": [_correct_index(q) for q in questions],
        "source_dataset": [resolved[i] for i in keep],
        **(extra or {}),
    }
    if keep != list(range(len(dataset))):
        dataset = dataset.select(keep)
    for name, values in columns.items():
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
        dataset = dataset.add_column(name, values)
    return dataset


def _prepare(dataset: Any) -> Any:
    """The fine-grained rows of the authors' data-set list, flattened."""
    fine = [(qs or {}).get(QUESTION) for qs in dataset.select_columns(["questions"])["questions"]]
    resolved = sources(dataset)
    keep = [i for i, q in enumerate(fine) if _usable(q) and in_paper(resolved[i])]
    if len(dataset) and not keep:
        raise BioresConfigError(
            "uBench: no row of the release belongs to eVLLM's fine-grained data-set list "
            f"(data sets found: {sorted(set(resolved))[:5]})"
        )
    return flatten(dataset, keep, [fine[i] for i in keep], resolved)


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
# Pixel-size levels (2um, 0p5um, ...) resample each image by its microns_per_pixel.
__getattr__ = sweep_getattr(prepare=_prepare, image_column="image", mpp_column="microns_per_pixel")


def doc_to_visual(doc):
    return doc_images(doc, "image")


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    """eVLLM's prompt, verbatim (pre/post prompts empty by default)."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{prompt(doc['question'], doc['options'])}{kwargs.get('post_prompt', '')}"


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc), doc_to_text(doc, lmms_eval_specific_kwargs))


def doc_to_target(doc):
    return gold(doc["options"], int(doc["answer_idx"]))


def evllm_record(doc, response) -> dict[str, Any]:
    idx = int(doc["answer_idx"])
    return {
        "score": float(check_prediction(response, doc["options"], idx)),
        "answer": gold(doc["options"], idx),
        "response": str(response),
        "image_id": doc.get("image_id"),
        "dataset": doc.get("source_dataset", ""),
        **sweep_fields(doc),
    }


def process_results(doc, results):
    record = evllm_record(doc, results[0] if results else "")
    return skipped_results(
        doc, {"accuracy": record, "accuracy_without_eulenberg": record, "macro_dataset_accuracy": record}
    )


aggregate_accuracy = aggregate_score


def aggregate_without_eulenberg(results) -> float:
    """eVLLM's post-hoc fine-grained table: the two Eulenberg sets dropped."""
    return aggregate_score([r for r in results if isinstance(r, dict) and r.get("dataset") not in POSTHOC_DROPPED])


def aggregate_macro_dataset(results) -> float:
    """Unweighted mean over source data sets of each data set's accuracy."""
    groups: dict[str, list[float]] = {}
    for r in results:
        if isinstance(r, dict):
            groups.setdefault(str(r.get("dataset")), []).append(r["score"])
    return mean(mean(v) for v in groups.values()) if groups else 0.0


# biores' own variant (_direct_template_yaml): same rows, instruction last, lenient letter reading


def direct_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return prompt_text(
        f"{str(doc['question']).strip()}\n{lettered(doc['options'], '{letter}) {text}')}", lmms_eval_specific_kwargs
    )


def direct_doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc), direct_doc_to_text(doc, lmms_eval_specific_kwargs))


def direct_doc_to_target(doc):
    return LETTERS[int(doc["answer_idx"])]


def direct_process_results(doc, results):
    response = results[0] if results else ""
    record = choice_record(
        doc,
        response,
        doc["options"],
        int(doc["answer_idx"]),
        image_id=doc.get("image_id"),
        dataset=doc.get("source_dataset", "unknown"),
    )
    return skipped_results(doc, {"accuracy": record, "macro_dataset_accuracy": record})
