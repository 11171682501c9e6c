"""biores_pathvqa: PathVQA (pathology VQA) as an inference-resolution sweep.

Data: ``flaviagiammarino/path-vqa`` on the Hugging Face hub (parquet under ``data/``), or a
local copy named by ``$BIORES_PATHVQA_PATH`` (see README.md).

Schema (verified from the dataset card, ``dataset_info``): ``image`` (``datasets.Image``;
textbook and PEIR pathology figures, some stored as CMYK JPEGs, which ``sweep_image`` converts
to RGB), ``question`` (str), ``answer`` (str). Splits: ``train`` (19,654), ``validation``
(6,259), ``test`` (6,719); the sweep uses ``test``. There is no answer-type column; the card's
leaderboard ranks "Yes/No accuracy", "Free-form accuracy" and "Overall accuracy", so a question
is *closed* when its answer is ``yes`` / ``no`` and *open* otherwise.

Metrics (``biores_plugin.task_library.scoring``, shared with ``biores_vqa_rad``): ``closed_accuracy``
(yes/no reading of the response), ``open_accuracy`` (exact match after normalisation), ``accuracy`` (overall) and the
secondary ``open_recall`` (share of answer tokens found in the response).
"""

# PathVQA has VQA-RAD's schema (image, question, answer; closed = yes/no answer): the shared
# open/closed VQA task functions, including the module __getattr__ that serves process_docs_224,
# process_docs_native, ... for any resolution.
from biores_plugin.task_library.vqa import *  # noqa: F401,F403  (yaml !function targets)
from biores_plugin.task_library.vqa import __getattr__  # noqa: F401  (process_docs_<resolution>)
