"""biores_pmc_vqa2: PMC-VQA version 2 (``test_2.csv`` + ``images_2.zip``) as a resolution sweep.

Data: ``xmcmic/PMC-VQA`` on the Hugging Face hub (mirrored as ``RadGenome/PMC-VQA``), or a
local copy named by ``$BIORES_PMC_VQA2_PATH`` holding ``test_2.csv`` and ``images_2.zip`` (or
an ``images_2/`` folder).

Version-2 rows: ``index, Figure_path, Caption, Question, Choice A .. Choice D, Answer, split``,
``Answer`` being the correct letter (layout from public loaders of ``test_2.csv``, not checked
against the file itself); version-1 spellings are accepted too (``_prepare`` is v1's). The
protocol is v1's (``biores_pmc_vqa``): MedVInT's choice prompt, nearest choice by ``difflib``.
"""

from __future__ import annotations

from biores_plugin.tasks.biores_pmc_vqa.utils import (  # noqa: F401  (yaml !function targets)
    REPO_ID,
    _prepare,
    aggregate_accuracy,
    doc_to_target,
    doc_to_text,
    process_results,
)

from biores_plugin.eval.archive import image_archive
from biores_plugin.eval.images import aggregate_skipped  # noqa: F401  (yaml !function target)
from biores_plugin.eval.sweep import archive_images, chat_messages, sweep_getattr

ENV = "BIORES_PMC_VQA2_PATH"


def images():
    return image_archive(
        ENV,
        REPO_ID,
        zips=["images_2.zip"],
        folders=["images_2", "images", "figures"],
        what="PMC-VQA version-2 figures (images_2.zip or images_2/)",
    )


def _sizes(dataset):
    return images().sizes(dataset["Figure_path"])


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=_prepare, image_column=None, sizes_fn=_sizes)


def doc_to_visual(doc):
    return archive_images(doc, images(), doc["Figure_path"])


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc), doc_to_text(doc, lmms_eval_specific_kwargs))
