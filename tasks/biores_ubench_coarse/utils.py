"""biores_ubench_coarse: uBench's coarse perception questions under the authors' protocol.

One row per (image, coarse question type) of ``jnirschl/uBench``: ``domain``, ``modality``,
``stain``, ``subdomain``, ``submodality`` (the types eVLLM's ``evaluate_dataset`` also asks;
every image of the release, not only the fine-grained list). Prompt and score are eVLLM's
(``biores_plugin.eval.evllm``), as in ``biores_ubench``. Metrics: ``accuracy`` (pooled over
all coarse questions) and ``<type>_accuracy`` per question type.
"""

from __future__ import annotations

from typing import Any

from biores_plugin.tasks.biores_ubench.utils import (  # noqa: F401  (yaml !function targets)
    doc_to_messages,
    doc_to_target,
    doc_to_text,
    doc_to_visual,
    evllm_record,
    flatten,
    sources,
    usable,
)

from biores_plugin.eval import evllm
from biores_plugin.eval.images import aggregate_skipped  # noqa: F401  (yaml !function target)
from biores_plugin.eval.scoring import aggregate_score, aggregate_where
from biores_plugin.eval.sweep import skipped_results, sweep_getattr


def _prepare(dataset: Any) -> Any:
    rows = dataset.select_columns(["questions"])["questions"]
    resolved = sources(dataset)
    keep, questions, kinds = [], [], []
    for i, qs in enumerate(rows):
        for kind in evllm.COARSE:
            q = (qs or {}).get(kind)
            if usable(q):
                keep.append(i)
                questions.append(q)
                kinds.append(kind)
    return flatten(dataset, keep, questions, resolved, {"question_class": kinds})


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
# Pixel-size levels (2um, 0p5um, ...) resample each image by its microns_per_pixel, as biores_ubench.
__getattr__ = sweep_getattr(prepare=_prepare, image_column="image", mpp_column="microns_per_pixel")


def process_results(doc, results):
    record = {**evllm_record(doc, results[0] if results else ""), "question_class": doc["question_class"]}
    return skipped_results(doc, {"accuracy": record, **{f"{kind}_accuracy": record for kind in evllm.COARSE}})


aggregate_accuracy = aggregate_score
aggregate_domain = aggregate_where("question_class", "domain")
aggregate_modality = aggregate_where("question_class", "modality")
aggregate_stain = aggregate_where("question_class", "stain")
aggregate_subdomain = aggregate_where("question_class", "subdomain")
aggregate_submodality = aggregate_where("question_class", "submodality")
