"""uBench scored as its authors score it (Ale9806/eVLLM@c6108d4), on a hub-layout fixture.

The reference below is written from eVLLM's source, not from biores: ``add_alphabet``
(``src/evlm/inference/utils.py``), the template of ``evaluate_dataset``
(``src/evlm/inference/generative_inference.py``) and ``check_prediction``
(``src/evlm/eval/eval_utils.py``), applied to the raw ``questions`` struct of the release.
"""

from __future__ import annotations

import pytest
from fixtures_real import build_ubench


def add_alphabet(options, answer):  # eVLLM src/evlm/inference/utils.py, verbatim logic
    idx_to_option = {0: "A) ", 1: "B) ", 2: "C) ", 3: "D) ", 4: "E) ", 5: "F) ", 6: "G) ", 7: "H) "}
    index = options.index(answer)
    options = [idx_to_option[i] + options[i] for i in range(len(options))]
    answer = idx_to_option[index] + answer
    assert answer in options
    return options, answer


def check_prediction(row):  # eVLLM src/evlm/eval/eval_utils.py, verbatim logic
    abcd = ["A", "B", "C", "D", "E", "F", "G"]
    correct_letter = abcd[row["correct_idx"]]
    return row["correct_answer"] in row["prediction"] or correct_letter in row["prediction"][0:1]


def reference_row(q: dict, prediction: str) -> tuple[str, dict]:
    """(template, row) as evaluate_dataset + get_results build them."""
    options, answer = add_alphabet(list(q["options"]), q["answer"])
    template = (
        "Answer with a single letter, no extra details."
        + "\n"
        + "Question:"
        + q["question"]
        + "\n"
        + "\n".join(options)
    )
    return template, {
        "correct_idx": q["options"].index(q["answer"]),
        "correct_answer": answer,
        "prediction": prediction,
    }


@pytest.fixture(scope="module")
def ubench(tmp_path_factory):
    from datasets import load_dataset
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.eval.plugin import install

    fixture = build_ubench(tmp_path_factory.mktemp("ubench") / "data")
    mp = pytest.MonkeyPatch()
    mp.setenv("BIORES_UBENCH_PATH", str(fixture.root))
    mp.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path_factory.mktemp("cache")))
    install()
    names = ["biores_ubench_native", "biores_ubench_224", "biores_ubench_coarse_native", "biores_ubench_direct_native"]
    tasks = get_task_dict(names, TaskManager(include_defaults=False))
    raw = load_dataset("arrow", data_files=str(fixture.root / "perception/0.1.0/*.arrow"), split="train")
    raw = {r["image_id"]: r for r in raw.remove_columns("image")}
    yield tasks, raw, fixture
    mp.undo()


def responses(q: dict) -> list[str]:
    """Responses that probe every branch of check_prediction for question ``q``."""
    options, answer = add_alphabet(list(q["options"]), q["answer"])
    letter, text = answer[0], q["answer"]
    wrong = next(o for o in options if o != answer)
    return [
        letter,
        answer,
        f"The answer is {answer}.",
        answer.lower(),
        f" {letter}",
        f"{letter}xyz",
        text,
        f"({letter})",
        wrong,
        wrong[0],
        wrong.lower(),
        "",
        f"{wrong[0]} or maybe {answer}",
        answer[:3],
        answer[:3].lower(),
    ]


def test_every_doc_response_pair_scores_as_check_prediction(ubench):
    tasks, raw, _fixture = ubench
    for name, kind in (
        ("biores_ubench_native", None),
        ("biores_ubench_224", None),
        ("biores_ubench_coarse_native", "coarse"),
    ):
        task = tasks[name]
        docs = task.test_docs_no_media()
        assert len(docs) > 0
        for doc in docs:
            qtype = doc["question_class"] if kind else "classification"
            q = raw[doc["image_id"]]["questions"][qtype]
            for response in responses(q):
                template, row = reference_row(q, response)
                assert task.doc_to_text(doc) == template
                raw_score = task.config.process_results(doc, [response])["accuracy"][
                    "score"
                ]  # the rule on the text as is
                assert raw_score == float(check_prediction(row)), (name, doc["image_id"], response)
                # lmms-eval strips each response before scoring (as eVLLM's model wrappers strip theirs)
                _template, row = reference_row(q, response.strip())
                assert task.process_results(doc, [response])["accuracy"]["score"] == float(check_prediction(row))


def test_check_prediction_cases_from_its_source(ubench):
    """Hand-written outcomes of the rule (case-sensitive substring, or first character)."""
    tasks, _raw, _fixture = ubench
    task = tasks["biores_ubench_native"]
    doc = next(d for d in task.test_docs_no_media() if d["image_id"] == "img0")  # basophil, index 2 -> "C) basophil"
    score = {
        r: task.process_results(doc, [r])["accuracy"]["score"]
        for r in (
            "C",
            "C) basophil",
            "I pick C) basophil",
            "Cells",
            "c) basophil",
            " C",
            "basophil",
            "(C)",
            "B) neutrophil",
            "c",
            "",
            "C) ",
            "Answer: C",
        )
    }
    assert score == {
        "C": 1.0,
        "C) basophil": 1.0,
        "I pick C) basophil": 1.0,
        "Cells": 1.0,
        "c) basophil": 0.0,
        " C": 1.0,
        "basophil": 0.0,
        "(C)": 0.0,
        "B) neutrophil": 0.0,
        "c": 0.0,
        "": 0.0,
        "C) ": 1.0,
        "Answer: C": 0.0,
    }
    assert task.config.process_results(doc, [" C"])["accuracy"]["score"] == 0.0  # unstripped: first character is " "
    assert task.doc_to_text(doc) == (
        "Answer with a single letter, no extra details.\nQuestion:What type of blood cell is shown?\n"
        "A) lymphocyte\nB) neutrophil\nC) basophil\nD) none of the above"
    )


def test_rows_follow_the_authors_dataset_list(ubench):
    tasks, _raw, fixture = ubench
    task = tasks["biores_ubench_native"]
    docs = task.test_docs_no_media()
    assert [d["question"] for d in docs] == [r.question for r in fixture.rows]
    assert [d["source_dataset"] for d in docs] == [
        "acevedo_et_al_2020",
        "dataset_null:1",
        "kather_et_al_2016",
        "acevedo_et_al_2020",
        "eulenberg_et_al_2017_darkfield",
        "kather_et_al_2016",
    ]  # the null row asking kather's options resolved
    records = [task.process_results(d, ["A"]) for d in docs]  # right: img1, img4, img7 (gold A) -> 3 of 6
    agg = task.aggregation()
    assert agg["accuracy"]([r["accuracy"] for r in records]) == pytest.approx(3 / 6)
    eulenberg_right = [
        task.process_results(d, ["C"]) if d["source_dataset"].startswith("eulenberg") else r
        for d, r in zip(docs, records, strict=True)
    ]
    assert agg["accuracy"]([r["accuracy"] for r in eulenberg_right]) == pytest.approx(4 / 6)
    # the post-hoc table drops the Eulenberg set: 3 of 5 either way
    for recs in (records, eulenberg_right):
        assert agg["accuracy_without_eulenberg"]([r["accuracy_without_eulenberg"] for r in recs]) == pytest.approx(
            3 / 5
        )
    direct = tasks["biores_ubench_direct_native"]
    assert len(direct.test_docs_no_media()) == len(docs)  # biores' own variant: same rows


def test_coarse_questions_are_their_own_sweep(ubench):
    tasks, raw, _fixture = ubench
    task = tasks["biores_ubench_coarse_native"]
    docs = task.test_docs_no_media()
    assert [d["question_class"] for d in docs] == ["domain"] * len(raw)  # the fixture asks only "domain"
    assert {d["image_id"] for d in docs} == set(raw)  # every image, not only the fine-grained list
    records = [task.process_results(d, ["A"]) for d in docs]  # gold "pathology" is A
    agg = task.aggregation()
    assert agg["accuracy"]([r["accuracy"] for r in records]) == 1.0
    assert agg["domain_accuracy"]([r["domain_accuracy"] for r in records]) == 1.0
    assert agg["stain_accuracy"]([r["stain_accuracy"] for r in records]) == 0.0  # none asked
