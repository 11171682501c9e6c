"""biores_pathvqa: PathVQA (pathology VQA) as an inference-resolution sweep.

Data: ``flaviagiammarino/path-vqa`` on the Hugging Face hub (parquet under ``data/``), or a
local copy named by ``$BIORES_PATHVQA_PATH`` (see README.md).

Schema (verified from the dataset card, ``dataset_info``): ``image`` (``datasets.Image``;
textbook and PEIR pathology figures, some stored as CMYK JPEGs, which ``sweep_image`` converts
to RGB), ``question`` (str), ``answer`` (str). Splits: ``train`` (19,654), ``validation``
(6,259), ``test`` (6,719); the sweep uses ``test``. There is no answer-type column; the card's
leaderboard ranks "Yes/No accuracy", "Free-form accuracy" and "Overall accuracy", so a question
is *closed* when its answer is ``yes`` / ``no`` and *open* otherwise.

Metrics (scoring shared with ``biores_vqa_rad``): ``closed_accuracy`` (yes/no reading of the
response), ``open_accuracy`` (exact match after normalisation), ``accuracy`` (overall) and the
secondary ``open_recall`` (share of answer tokens found in the response).
"""

from biores_plugin.lmms_tasks import chat_messages, sweep_getattr, sweep_image
from biores_plugin.tasks.biores_vqa_rad.utils import (  # noqa: F401  (yaml !function targets)
    add_question_type,
    aggregate_accuracy,
    aggregate_closed,
    aggregate_open,
    aggregate_open_recall,
    vqa_doc_to_text,
    vqa_results,
)


def _prepare(dataset):
    return add_question_type(dataset)


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=_prepare, image_column="image")


def doc_to_visual(doc):
    return [sweep_image(doc["image"], int(doc["biores_resolution"]))]


doc_to_text = vqa_doc_to_text


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


process_results = vqa_results
