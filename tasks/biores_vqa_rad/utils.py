"""biores_vqa_rad: VQA-RAD (radiology VQA) as an inference-resolution sweep.

Data: ``flaviagiammarino/vqa-rad`` on the Hugging Face hub (parquet, ``data/train-*`` and
``data/test-*``), or a local copy named by ``$BIORES_VQA_RAD_PATH`` (see README.md).

Schema (verified from the dataset card, ``dataset_info``): three columns, ``image``
(``datasets.Image``; MedPix radiographs / CT / MRI, mostly grayscale, a few hundred px),
``question`` (str) and ``answer`` (str). Splits: ``train`` (1,793 rows) and ``test`` (451 rows);
the sweep uses ``test``.

Closed or open. LLaVA-Med splits VQA-RAD by the original release's ``answer_type`` (``CLOSED`` /
``OPEN``; e.g. "axial or coronal?" is closed). The hub copy has no such column, so:

* a copy that carries an ``answer_type`` column uses it;
* else, when the local copy holds the original VQA-RAD JSON (``VQA_RAD Dataset Public.json``, or
  any ``*.json`` list of records with ``question`` / ``answer`` / ``answer_type``), each question
  takes the ``answer_type`` of the record with the same normalised question and answer;
* else a question is closed when its answer is yes/no (the card's leaderboard definition).

Every record says which rule typed it (``closed_by``: ``answer_type`` or ``yes/no answer``) and
the metric ``original_answer_type`` is the share of questions typed by the original column (1.0:
LLaVA-Med's split; 0.0: the yes/no rule throughout).
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from biores_plugin.eval.scoring import add_question_type, closed_by_answer, normalize_answer, sweep_fields
from biores_plugin.eval.sweep import sweep_getattr
from biores_plugin.eval.vqa import *
from biores_plugin.eval.vqa import direct_process_results as _direct_results
from biores_plugin.eval.vqa import process_results as _llava_med_results

ENV = "BIORES_VQA_RAD_PATH"
BY_COLUMN, BY_ANSWER = "answer_type", "yes/no answer"
_log = logging.getLogger(__name__)


def _key(question: Any, answer: Any) -> tuple[str, str]:
    return normalize_answer(question), normalize_answer(answer)


@lru_cache(maxsize=4)
def original_answer_types(root: str) -> dict[tuple[str, str], str]:
    """``{(question, answer): CLOSED/OPEN}`` from the original VQA-RAD JSON files in ``root``."""
    out: dict[tuple[str, str], str] = {}
    folder = Path(root)
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # not the original release (datasets' own json files live beside it)
        if not isinstance(records, list):
            continue
        for r in records:
            if isinstance(r, dict) and {"question", "answer", "answer_type"} <= set(r):
                kind = str(r["answer_type"]).strip().upper()
                if kind in ("CLOSED", "OPEN"):
                    out.setdefault(_key(r["question"], r["answer"]), kind)
    return out


def _prepare(dataset: Any) -> Any:
    if "answer_type" in dataset.column_names:
        kinds = [str(t or "").strip().upper() for t in dataset["answer_type"]]
    else:
        lookup = original_answer_types(os.environ.get(ENV, "").strip()) if os.environ.get(ENV) else {}
        kinds = [lookup.get(_key(q, a), "") for q, a in zip(dataset["question"], dataset["answer"], strict=True)]
    typed = [k in ("CLOSED", "OPEN") for k in kinds]
    closed = [
        k == "CLOSED" if t else closed_by_answer(a) for k, t, a in zip(kinds, typed, dataset["answer"], strict=True)
    ]
    if not all(typed):
        _log.warning(
            "biores_vqa_rad: %d of %d questions have no original answer_type; closed = yes/no answer for "
            "those (LLaVA-Med splits by answer_type; see the original_answer_type metric)",
            typed.count(False),
            len(typed),
        )
    dataset = add_question_type(dataset, closed)
    if "closed_by" in dataset.column_names:
        dataset = dataset.remove_columns("closed_by")
    return dataset.add_column("closed_by", [BY_COLUMN if t else BY_ANSWER for t in typed])


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=_prepare, image_column="image")


def _typed(doc: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    by = doc.get("closed_by", BY_ANSWER)
    metrics = {name: {**record, "closed_by": by} for name, record in out.items() if name != "biores_skipped_images"}
    if metrics:
        metrics["original_answer_type"] = {"score": float(by == BY_COLUMN), "closed_by": by, **sweep_fields(doc)}
    return {**metrics, "biores_skipped_images": out["biores_skipped_images"]}


def process_results(doc, results):
    return _typed(doc, _llava_med_results(doc, results))


def direct_process_results(doc, results):
    return _typed(doc, _direct_results(doc, results))
