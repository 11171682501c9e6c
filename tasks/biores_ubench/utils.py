"""biores_ubench: uBench / μ-Bench perception (fine-grained classification VQA) as a sweep.

Data: ``jnirschl/uBench`` on the Hugging Face hub, or a local copy named by
``$BIORES_UBENCH_PATH`` (see README.md).

Schema. The repository (verified from its file listing) stores the perception set as
``datasets`` Arrow shards, ``perception/0.1.0/ubench-test-0000N-of-00007.arrow`` plus
``dataset_info.json``: one split, ``test`` (17,315 images, one row each). Columns (from the
``dataset_info.json`` features, which the card page shows only in part, and from public loaders):
``image_id``, ``image`` (``datasets.Image``; light, fluorescence and electron micrographs of
very different sizes), ``label`` (ClassLabel) / ``label_name``, ``dataset`` (source data set;
null for some rows), ``domain``, ``subdomain``, ``modality``, ``submodality``, ``stain``,
``institution``, ``license``, ``microns_per_pixel``, ``ncbitaxon_*``, ``pmid``, ``split``,
``synthetic``, ``captions``, ``bbox``, ``polygon`` and ``questions``: a struct keyed by
question type (``classification``, ``domain``, ``modality``, ``stain``, ``subdomain``,
``submodality``), each ``{question, options, answer, answer_idx, id, name}`` or null. The
options end with "none of the above" in the official release (not relied on here).

Task: μ-Bench's closed-VQA format for *fine-grained perception*, i.e. the ``classification``
question of each image (cell type, cell-cycle phase, tissue class, ...), the question most
sensitive to resolution; rows without one are dropped. Coarse questions (domain, modality,
stain, ...) are not asked. All source data sets in the release are kept (the paper's tables
leave out two that the hub release adds; not filtered here).

Prompt: the question, then the options lettered ``A) ...``, ``B) ...`` as in the official
generative evaluation, then "Answer with a single letter". The correct option is
``options.index(answer)`` (``answer_idx`` when the answer text is not among the options).
Metrics: ``accuracy`` (pooled over questions, as the paper's tables) and
``macro_dataset_accuracy`` (unweighted mean over source data sets; an extra).
"""

from __future__ import annotations

from typing import Any

from biores_plugin.eval.images import aggregate_skipped  # noqa: F401  (yaml !function target)
from biores_plugin.eval.scoring import LETTERS, aggregate_score, choice_record, lettered, mean
from biores_plugin.eval.sweep import chat_messages, doc_images, prompt_text, skipped_results, sweep_getattr

QUESTION = "classification"


def _correct_index(q: dict[str, Any]) -> int:
    options = [str(o) for o in q["options"]]
    answer = q.get("answer")
    if answer is not None and str(answer) in options:
        return options.index(str(answer))
    return int(q["answer_idx"])


def _usable(q: Any) -> bool:
    return isinstance(q, dict) and bool(q.get("question")) and bool(q.get("options")) and (
        q.get("answer") is not None or q.get("answer_idx") is not None
    )


def _prepare(dataset: Any) -> Any:
    """Flatten ``questions.classification`` into ``question`` / ``options`` / ``answer_idx``."""
    rows = [(qs or {}).get(QUESTION) for qs in dataset.select_columns(["questions"])["questions"]]
    keep = [i for i, q in enumerate(rows) if _usable(q)]
    columns = {
        "question": [str(q["question"]).strip() if _usable(q) else "" for q in rows],
        "options": [[str(o) for o in q["options"]] if _usable(q) else [] for q in rows],
        "answer_idx": [_correct_index(q) if _usable(q) else -1 for q in rows],
        "source_dataset": [str(d) if d else "unknown" for d in dataset["dataset"]]
        if "dataset" in dataset.column_names
        else ["unknown"] * len(dataset),
    }
    for name, values in columns.items():
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
        dataset = dataset.add_column(name, values)
    # Every image of the release has a classification question, so this is normally a no-op
    # (a selection would make the size columns rewrite the table once).
    return dataset if len(keep) == len(dataset) else dataset.select(keep)


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
# Pixel-size levels (2um, 0p5um, ...) resample each image by its microns_per_pixel.
__getattr__ = sweep_getattr(prepare=_prepare, image_column="image", mpp_column="microns_per_pixel")


def doc_to_visual(doc):
    return doc_images(doc, "image")


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return prompt_text(f"{doc['question']}\n{lettered(doc['options'], '{letter}) {text}')}", lmms_eval_specific_kwargs)


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc), doc_to_text(doc, lmms_eval_specific_kwargs))


def doc_to_target(doc):
    return LETTERS[int(doc["answer_idx"])]


def process_results(doc, results):
    response = results[0] if results else ""
    record = choice_record(doc, response, doc["options"], int(doc["answer_idx"]),
                           image_id=doc.get("image_id"), dataset=doc.get("source_dataset", "unknown"))
    return skipped_results(doc, {"accuracy": record, "macro_dataset_accuracy": record})


aggregate_accuracy = aggregate_score


def aggregate_macro_dataset(results) -> float:
    """Unweighted mean over source data sets of each data set's accuracy."""
    groups: dict[str, list[float]] = {}
    for r in results:
        if isinstance(r, dict):
            groups.setdefault(str(r.get("dataset")), []).append(r["score"])
    return mean(mean(v) for v in groups.values()) if groups else 0.0
