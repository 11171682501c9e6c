"""biores_slake: SLAKE (English questions) as an inference-resolution sweep.

Data: ``BoKelvin/SLAKE`` on the Hugging Face hub, or a local copy named by
``$BIORES_SLAKE_PATH`` (see README.md).

Schema. The hub repository (verified from its file listing) holds ``train.json``,
``validation.json``, ``test.json``, ``imgs.zip`` (212 MB), ``KG.zip`` and ``mask.txt``; the
metadata loads with the json builder, the images are *not* in the table. Each record has the
original SLAKE 1.0 fields ``img_id``, ``img_name`` (e.g. ``xmlab102/source.jpg``, relative to
the ``imgs/`` folder that ``imgs.zip`` unpacks to), ``question``, ``answer``, ``q_lang``
(``en`` / ``zh``), ``location``, ``modality``, ``answer_type`` (``OPEN`` / ``CLOSED``),
``base_type``, ``content_type``, ``triple`` and ``qid``. The field names and the ``imgs/``
layout are confirmed by several public loaders of this repository; the exact member names
inside ``imgs.zip`` could not be listed here, so images are looked up as ``imgs/<img_name>``,
``<img_name>`` or any member whose trailing path equals ``img_name``.

Split: ``test``, English only (``q_lang == "en"``). Questions are *closed* when
``answer_type`` is ``CLOSED`` (SLAKE's own split of closed vs open questions; unlike VQA-RAD
it includes non-yes/no choices such as "Which is bigger, liver or spleen?").

Metrics (``biores_plugin.eval.scoring``, shared with ``biores_vqa_rad``): ``closed_accuracy`` (yes/no answers compare
the yes/no reading of the response, other closed answers an exact normalised match),
``open_accuracy`` (exact match after normalisation), ``accuracy`` (overall) and the secondary
``open_recall`` (share of answer tokens found in the response).

Images come from the same root as the metadata: ``$BIORES_SLAKE_PATH`` when set, else the hub
snapshot (``huggingface_hub.snapshot_download``, which reads the local cache when offline).
:class:`biores_plugin.eval.archive.ImageArchive` reads them from a zip or a folder and gives
header sizes without decoding pixels.
"""

from __future__ import annotations

from typing import Any

from biores_plugin.eval.archive import ImageArchive, image_archive
from biores_plugin.eval.scoring import CLOSED, add_question_type
from biores_plugin.eval.sweep import chat_messages, sweep_getattr, sweep_image
from biores_plugin.eval.vqa import *  # noqa: F401,F403  (doc_to_text, doc_to_messages, process_results, aggregations)

REPO_ID = "BoKelvin/SLAKE"
ENV = "BIORES_SLAKE_PATH"


# ----------------------------------------------------------------------------- SLAKE


def images() -> ImageArchive:
    return image_archive(ENV, REPO_ID, ["imgs.zip"], ["imgs"], "SLAKE images (imgs.zip or imgs/)")


def _prepare(dataset: Any) -> Any:
    langs = [str(x or "").strip().lower() for x in dataset["q_lang"]]
    keep = [i for i, lang in enumerate(langs) if lang == "en"]
    if len(keep) != len(dataset):
        dataset = dataset.select(keep)
    closed = [str(x or "").strip().upper() == CLOSED.upper() for x in dataset["answer_type"]]
    return add_question_type(dataset, closed)


def _sizes(dataset: Any) -> list[tuple[int, int]]:
    return images().sizes(dataset["img_name"])


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=_prepare, image_column=None, sizes_fn=_sizes)


def doc_to_visual(doc):
    return [sweep_image(images().open(doc["img_name"]), int(doc["biores_resolution"]))]


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))
