"""biores_vqa_rad: VQA-RAD (radiology VQA) as an inference-resolution sweep.

Data: ``flaviagiammarino/vqa-rad`` on the Hugging Face hub (parquet, ``data/train-*`` and
``data/test-*``), or a local copy named by ``$BIORES_VQA_RAD_PATH`` (see README.md).

Schema (verified from the dataset card, ``dataset_info``): three columns, ``image``
(``datasets.Image``; MedPix radiographs / CT / MRI, mostly grayscale, a few hundred px),
``question`` (str) and ``answer`` (str). Splits: ``train`` (1,793 rows) and ``test`` (451 rows);
the sweep uses ``test``. The card has no answer-type column: following the card's leaderboard
definition ("Close-ended accuracy ... for the subset of binary yes/no questions"), a question is
*closed* when its answer is ``yes`` / ``no`` and *open* otherwise.

Metrics (the card's three leaderboard metrics plus one):

* ``closed_accuracy``: the first word of the response, read as yes/no, equals the answer;
* ``open_accuracy``: exact match after VQA normalisation (lower case, no punctuation, no
  articles, squeezed spaces);
* ``accuracy``: both together (overall accuracy, the metric the sweep group averages);
* ``open_recall``: secondary, the share of the answer's tokens found in the response (the
  recall-style score LLaVA-Med reports for open questions); lenient with verbose answers.
"""

from biores_plugin.task_library.vqa import *  # noqa: F401,F403  (yaml !function targets)
from biores_plugin.task_library.vqa import __getattr__  # noqa: F401  (process_docs_<resolution>)
