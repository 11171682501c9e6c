"""The study's protocol preset (cliangyu/med_eval): scoring as its code does it, the tasks as
lmms-eval builds them from local copies, and ``biores run --protocol med_eval``'s flags."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from biores_plugin.eval import med_eval


@pytest.mark.parametrize(
    "response, answer, f1, recall",
    [
        ("The left lung.", "left lung", 1.0, 1.0),
        ("right lung lesion", "left lung", 0.4, 0.5),  # tp 1, fp 2, fn 1
        ("lung lung", "lung", 1.0, 1.0),  # tp counts the response's occurrences
        ("", "liver", 0.0, 0.0),
        ("two", "2", 1.0, 1.0),  # number words normalised
    ],
)
def test_open_questions_f1_and_recall(response, answer, f1, recall):
    got_f1, _, got_recall = med_eval.calculate_f1score(response, answer)
    assert got_f1 == pytest.approx(f1) and got_recall == pytest.approx(recall)
    assert med_eval.process_results({"answer": answer}, [response]) == {
        "open_f1": pytest.approx(f1),
        "open_recall": pytest.approx(recall),
    }


@pytest.mark.parametrize(
    "response, answer, hit",
    [
        ("Yes, there is.", "yes", 1.0),
        ("No.", "No", 1.0),
        ("yes", "no", 0.0),
        ("I don't know", "no", 1.0),
        ("Nope", "yes", 0.0),
    ],
)
def test_closed_questions_by_substring(response, answer, hit):
    assert med_eval.process_results({"answer": answer}, [response]) == {"closed_accuracy": hit}


def _image(w=40, h=30):
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    import datasets
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.eval.plugin import install, tasks_dir

    root = tmp_path_factory.mktemp("med_eval")
    vqa = datasets.Dataset.from_dict(
        {
            "image": [_image(), _image(20, 50)],
            "question": ["Is there a mass?", "Which organ?"],
            "answer": ["yes", "the liver"],
        }
    ).cast_column("image", datasets.Image())
    q = {"question": "What stain?", "options": ["H&E", "IHC", "Giemsa"], "answer": "IHC", "answer_idx": 1}
    ub = datasets.Dataset.from_dict(
        {
            "image": [_image(), _image()],
            "questions": [
                {"classification": {**q, "question": "Which cell?"}, "stain": q},
                {"classification": {**q, "answer_idx": 2}, "stain": None},
            ],
        }
    ).cast_column("image", datasets.Image())
    datasets.DatasetDict({"test": vqa}).save_to_disk(str(root / "vqa"))
    datasets.DatasetDict({"test": ub}).save_to_disk(str(root / "ub"))
    mp = pytest.MonkeyPatch()
    mp.setenv("BIORES_VQA_RAD_PATH", str(root / "vqa"))
    mp.setenv("BIORES_UBENCH_PATH", str(root / "ub"))
    install()
    manager = TaskManager("ERROR", include_path=str(tasks_dir() / "med_eval"), include_defaults=False)
    yield get_task_dict(["med_eval_vqa_rad", "med_eval_ubench"], manager)
    mp.undo()


def test_vqa_task_prompt_and_sampling(tasks):
    task = tasks["med_eval_vqa_rad"]
    docs = list(task.test_docs())
    assert [task.doc_to_text(d) for d in docs] == [
        "Is there a mass?",
        "Which organ?",
    ]  # the question alone, after the image
    messages = task.config.doc_to_messages(docs[0])
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": "You are a biomedical expert."}]}
    assert [p["type"] for p in messages[1]["content"]] == ["image", "text"]
    gen = task.config.generation_kwargs
    assert gen["temperature"] == 0.2 and gen["max_new_tokens"] == 128 and gen["do_sample"] is True
    assert gen["until"] == []  # nothing cut from the response


def test_ubench_every_question_lettered(tasks):
    task = tasks["med_eval_ubench"]
    docs = list(task.test_docs())
    assert [d["question_type"] for d in docs] == ["classification", "stain", "classification"]  # a null entry dropped
    assert (
        task.doc_to_text(docs[0])
        == "\nAnswer with a single letter, no extra details.\nQuestion: Which cell?\nA. H&E\nB. IHC\nC. Giemsa"
    )
    assert [d["answer_letter"] for d in docs] == ["B", "B", "C"]
    assert med_eval.ubench_process_results(docs[0], [" b. IHC"]) == {"accuracy": 1.0, "accuracy_classification": 1.0}
    assert med_eval.ubench_process_results(docs[2], ["The answer is C"]) == {
        "accuracy": 0.0,
        "accuracy_classification": 0.0,
    }


def test_run_protocol_flags():
    from biores_plugin.errors import BioresConfigError

    args, flags = med_eval.protocol_flags("med_eval", "qwen2_5_vl", "pretrained=P", ["--limit", "3"])
    assert args == "pretrained=P,system_prompt=You are a biomedical expert."
    assert (
        flags[flags.index("--gen_kwargs") + 1] == "temperature=0.2,max_new_tokens=128,do_sample=True,top_p=1.0"
        and "--seed" in flags
    )
    assert "--force_simple" not in flags
    _, q3 = med_eval.protocol_flags("med_eval", "qwen3_vl", "pretrained=P", [])
    assert "--force_simple" in q3  # lmms-eval's chat qwen3_vl prepends its own system turn to the task's
    vargs, _ = med_eval.protocol_flags("med_eval", "vllm", "model=P", [])
    assert vargs == "model=P"  # vllm takes the system prompt from the task's messages
    with pytest.raises(BioresConfigError, match="sets --gen_kwargs itself"):
        med_eval.protocol_flags("med_eval", "vllm", "model=P", ["--gen_kwargs", "temperature=0"])


def test_qwen2_vl_template_renders_the_source_prompt(stock_checkpoint):
    """Qwen2-VL's own chat template on the task's messages gives the string infer_eval.py writes by hand."""
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(str(stock_checkpoint("qwen2_vl")))
    doc = {"image": _image(), "question": "Is there a mass?", "answer": "yes"}
    messages = [
        {
            "role": m["role"],
            "content": [
                {"type": p["type"], **({"text": p["text"]} if p["type"] == "text" else {})} for p in m["content"]
            ],
        }
        for m in med_eval.doc_to_messages(doc)
    ]
    text = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a biomedical expert.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>Is there a mass?<|im_end|>\n<|im_start|>assistant\n"
    )
