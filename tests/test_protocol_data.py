"""Data-layout rules of the published protocols: MicroVQA's renamed split, VQA-RAD's original
``answer_type``. Real lmms-eval task loading over tiny copies in the real layouts."""

from __future__ import annotations

import json
import logging

import pytest
from fixtures_real import build_microvqa, build_vqa_rad


def _tasks(names, env: dict, monkeypatch, cache):
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.eval.plugin import install

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(cache))
    install()
    return get_task_dict(names, TaskManager(include_defaults=False))


def test_microvqa_copy_from_before_the_split_rename_loads(tmp_path, monkeypatch, caplog):
    """A copy saved before July 2025 has only ``train``: the same rows load as ``test``, with a note."""
    fixture = build_microvqa(tmp_path / "microvqa")
    data = fixture.root / "data"
    (data / "test-00000-of-00001.parquet").rename(data / "train-00000-of-00001.parquet")
    with caplog.at_level(logging.WARNING):
        tasks = _tasks(
            ["biores_microvqa_direct_native", "biores_microvqa_448"],
            {fixture.env: str(fixture.root)},
            monkeypatch,
            tmp_path / "cache",
        )
    for name, task in tasks.items():
        docs = task.test_docs()
        assert [d["question"] for d in docs] == [r.question for r in fixture.rows], name
        assert {"key_question", "images_list", "choices", "correct_index"} <= set(docs.column_names)
    notes = [r.getMessage() for r in caplog.records if "no split 'test'" in r.getMessage()]
    assert len(notes) == 2 and all("'train'" in n and "3 questions" in n and "\n" not in n for n in notes)


def test_microvqa_rename_leaves_other_tasks_alone(tmp_path):
    """Only biores tasks over jmhb/microvqa whose test split is missing are touched."""
    from datasets import Dataset, DatasetDict

    from biores_plugin.eval.plugin import _renamed_split

    class Config:
        def __init__(self, metadata, path="jmhb/microvqa"):
            self.metadata, self.dataset_path, self.test_split, self.task = metadata, path, "test", "t"

    class Task:
        def __init__(self, config):
            self.config = config
            self.dataset = DatasetDict({"train": Dataset.from_dict({"x": [1, 2]})})
            self.dataset_no_image = None

    host = Task(Config({"version": 1.0}))  # lmms-eval's own microvqa: no biores metadata
    _renamed_split(host)
    assert list(host.dataset) == ["train"]
    other = Task(Config({"local_path_env": "X"}, path="someone/else"))
    _renamed_split(other)
    assert list(other.dataset) == ["train"]
    ours = Task(Config({"local_path_env": "BIORES_MICROVQA_PATH"}))
    _renamed_split(ours)
    assert list(ours.dataset) == ["test"] and ours.dataset["test"]["x"] == [1, 2]


ORIGINAL = [  # VQA_RAD Dataset Public.json records (their field names), for the fixture's four test questions
    {
        "qid": 1,
        "image_name": "synpic1.jpg",
        "question": "Is there a fracture of the left femur?",
        "answer": "Yes",
        "answer_type": "CLOSED",
        "question_type": "ABN",
    },
    {
        "qid": 2,
        "image_name": "synpic2.jpg",
        "question": "Is the heart enlarged?",
        "answer": "No",
        "answer_type": "CLOSED",
        "question_type": "SIZE",
    },
    {
        "qid": 3,
        "image_name": "synpic3.jpg",
        "question": "Which lung is affected?",
        "answer": "left lung",
        "answer_type": "CLOSED",
        "question_type": "POS",
    },  # a choice between two: closed in the original, open by yes/no
    {
        "qid": 4,
        "image_name": "synpic4.jpg",
        "question": "What imaging modality was used?",
        "answer": "CT",
        "answer_type": "OPEN",
        "question_type": "MODALITY",
    },
]


@pytest.mark.parametrize("with_json", [True, False])
def test_vqa_rad_closed_open_follows_the_original_answer_type(tmp_path, monkeypatch, with_json):
    fixture = build_vqa_rad(tmp_path / "vqa_rad")
    if with_json:
        (fixture.root / "VQA_RAD Dataset Public.json").write_text(json.dumps(ORIGINAL))
    tasks = _tasks(
        ["biores_vqa_rad_native", "biores_vqa_rad_direct_native"],
        {fixture.env: str(fixture.root)},
        monkeypatch,
        tmp_path / "cache",
    )
    for task in tasks.values():
        docs = task.test_docs_no_media()
        expected = ["closed", "closed", "closed", "open"] if with_json else ["closed", "closed", "open", "open"]
        assert list(docs["question_type"]) == expected
        records = [task.process_results(d, [r.answer]) for d, r in zip(docs, fixture.rows, strict=True)]
        assert {r["accuracy"]["closed_by"] for r in records} == {"answer_type" if with_json else "yes/no answer"}
        agg = task.aggregation()
        assert agg["original_answer_type"]([r["original_answer_type"] for r in records]) == (1.0 if with_json else 0.0)
        # "left lung" is scored as a closed question once the original says so
        left = task.process_results(docs[2], ["right lung"])
        assert left["accuracy"]["question_type"] == ("closed" if with_json else "open")
