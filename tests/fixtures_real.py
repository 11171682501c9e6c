"""Tiny local copies of the six real biomedical VQA data sets, with their real layouts.

Each ``build_<name>(root)`` writes a few rows with the real column names and file layout of
the hub repository (or of a ``save_to_disk`` copy) and returns a :class:`Fixture` describing
the expected content. Images are generated, in several sizes (one larger than 896 px so every
capped variant really downsamples, one smaller than 224 px so none may upsample) and modes.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

BIG, SMALL, MID, TALL = (1200, 900), (200, 150), (640, 480), (700, 1000)


def image_bytes(size: tuple[int, int], seed: int, mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    """A small textured image (cheap to encode), in ``mode``, encoded as ``fmt``."""
    w, h = size
    rng = np.random.default_rng(seed)
    tile = rng.integers(0, 256, size=(max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
    img = Image.fromarray(tile, "RGB").resize((w, h), Image.NEAREST).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@dataclass
class Row:
    question: str
    answer: str  # the answer text (open/closed VQA) or the correct letter (multiple choice)
    size: tuple[int, int]  # stored size of the image the sweep columns describe
    closed: bool | None = None  # VQA: closed question?
    options: list[str] = field(default_factory=list)  # MC: option texts, in prompt order
    wrong: str = ""  # a wrong answer


@dataclass
class Fixture:
    name: str  # task prefix, e.g. biores_vqa_rad
    env: str
    root: Path
    rows: list[Row]
    multiple_choice: bool = False


def _hf_image(data: bytes) -> dict[str, Any]:
    return {"bytes": data, "path": None}


def _to_parquet(columns: dict[str, list], features: Any, path: Path) -> None:
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=features).to_parquet(str(path))


# ----------------------------------------------------------------------------- VQA-RAD


def build_vqa_rad(root: Path, truncate: int | None = None) -> Fixture:
    """Hub layout: ``data/{train,test}-00000-of-00001.parquet`` with image/question/answer;
    ``truncate``: the row whose image file is cut short."""
    from datasets import Features, Value
    from datasets import Image as HFImage

    rows = [
        Row("Is there a fracture of the left femur?", "yes", BIG, True, wrong="no"),
        Row("is the heart enlarged?", "no", SMALL, True, wrong="yes"),
        Row("Which lung is affected?", "left lung", MID, False, wrong="right lung"),
        Row("What imaging modality was used?", "CT", TALL, False, wrong="MRI"),
    ]
    features = Features({"image": HFImage(), "question": Value("string"), "answer": Value("string")})
    modes = ["L", "L", "RGB", "L"]  # radiographs are mostly grayscale
    files = [image_bytes(r.size, i, modes[i], "PNG" if i % 2 else "JPEG") for i, r in enumerate(rows)]
    if truncate is not None:
        files[truncate] = files[truncate][: len(files[truncate]) // 2]
    test = {
        "image": [_hf_image(data) for data in files],
        "question": [r.question for r in rows],
        "answer": [r.answer for r in rows],
    }
    _to_parquet(test, features, root / "data" / "test-00000-of-00001.parquet")
    train = {"image": [_hf_image(image_bytes((64, 64), 99))], "question": ["train only?"], "answer": ["yes"]}
    _to_parquet(train, features, root / "data" / "train-00000-of-00001.parquet")
    return Fixture("biores_vqa_rad", "BIORES_VQA_RAD_PATH", root, rows)


# ----------------------------------------------------------------------------- PathVQA


def build_pathvqa(root: Path) -> Fixture:
    """A ``DatasetDict.save_to_disk`` copy (test + validation), one CMYK JPEG as in the hub set."""
    from datasets import Dataset, DatasetDict, Features, Value
    from datasets import Image as HFImage

    rows = [
        Row("is this an adenocarcinoma?", "yes", BIG, True, wrong="no"),
        Row("what are present?", "mitotic figures", SMALL, False, wrong="giant cells"),
        Row("does this image show necrosis?", "no", MID, True, wrong="yes"),
        Row("what does this image show?", "granuloma", TALL, False, wrong="abscess"),
    ]
    features = Features({"image": HFImage(), "question": Value("string"), "answer": Value("string")})
    modes = ["CMYK", "RGB", "RGB", "RGB"]
    test = Dataset.from_dict(
        {
            "image": [_hf_image(image_bytes(r.size, 10 + i, modes[i])) for i, r in enumerate(rows)],
            "question": [r.question for r in rows],
            "answer": [r.answer for r in rows],
        },
        features=features,
    )
    val = Dataset.from_dict(
        {"image": [_hf_image(image_bytes((64, 64), 98))], "question": ["val?"], "answer": ["no"]}, features=features
    )
    DatasetDict({"test": test, "validation": val}).save_to_disk(str(root))
    return Fixture("biores_pathvqa", "BIORES_PATHVQA_PATH", root, rows)


# ----------------------------------------------------------------------------- SLAKE


def build_slake(root: Path) -> Fixture:
    """Hub layout: ``{train,validation,test}.json`` (SLAKE 1.0 records) + ``imgs.zip``."""
    root.mkdir(parents=True, exist_ok=True)
    images = {"xmlab1/source.jpg": BIG, "xmlab2/source.jpg": SMALL, "xmlab3/source.jpg": MID, "xmlab4/source.jpg": TALL}
    records = [
        ("xmlab1/source.jpg", "Does the picture contain liver?", "Yes", "en", "CLOSED", "organ"),
        ("xmlab1/source.jpg", "图片中包含肝脏吗?", "是", "zh", "CLOSED", "organ"),
        ("xmlab2/source.jpg", "What modality is used to take this image?", "MRI", "en", "OPEN", "modality"),
        ("xmlab3/source.jpg", "Which is bigger in this image, kidney or spleen?", "Kidney", "en", "CLOSED", "size"),
        ("xmlab4/source.jpg", "Where is the abnormality?", "Left Lung", "en", "OPEN", "position"),
    ]
    test = []
    for qid, (name, question, answer, lang, atype, content) in enumerate(records):
        img_id = int(name.split("/")[0][5:])
        test.append(
            {
                "img_id": img_id,
                "img_name": name,
                "question": question,
                "answer": answer,
                "q_lang": lang,
                "location": "Abdomen",
                "modality": "CT",
                "answer_type": atype,
                "base_type": "vqa",
                "content_type": content,
                "triple": ["vhead", "_", "_"],
                "qid": 1000 + qid,
            }
        )
    (root / "test.json").write_text(json.dumps(test, ensure_ascii=False, indent=1), encoding="utf-8")
    (root / "train.json").write_text(json.dumps(test[:1], ensure_ascii=False), encoding="utf-8")
    (root / "validation.json").write_text(json.dumps(test[:1], ensure_ascii=False), encoding="utf-8")
    with zipfile.ZipFile(root / "imgs.zip", "w") as zf:
        for i, (name, size) in enumerate(images.items()):
            zf.writestr(f"imgs/{name}", image_bytes(size, 20 + i))
            zf.writestr(f"imgs/{name.split('/')[0]}/mask.png", image_bytes((32, 32), 30 + i, "L", "PNG"))
    rows = [
        Row("Does the picture contain liver?", "Yes", BIG, True, wrong="No"),
        Row("What modality is used to take this image?", "MRI", SMALL, False, wrong="CT"),
        Row("Which is bigger in this image, kidney or spleen?", "Kidney", MID, True, wrong="Spleen"),
        Row("Where is the abnormality?", "Left Lung", TALL, False, wrong="Right Lung"),
    ]
    return Fixture("biores_slake", "BIORES_SLAKE_PATH", root, rows)


# ----------------------------------------------------------------------------- PMC-VQA


def build_pmc_vqa(root: Path) -> Fixture:
    """Hub layout: ``test_clean.csv`` (version-1 columns, ``X:`` prefixed choices) + ``images.zip``."""
    root.mkdir(parents=True, exist_ok=True)
    items = [
        (
            "PMC1064097_F1.jpg",
            BIG,
            "What is the uptake pattern in the breast?",
            [
                "Diffuse uptake pattern",
                "Focal uptake pattern",
                "No uptake pattern",
                "Cannot determine from the information given",
            ],
            "B",
        ),
        (
            "PMC2000001_F2.jpg",
            SMALL,
            "Which artery is occluded?",
            ["Left Anterior Descending", "Right coronary artery", "Circumflex", "Left main"],
            "A",
        ),
        ("PMC3000002_F3.jpg", MID, "What staining was used?", ["H&E", "PAS", "Trichrome", "Giemsa"], "D"),
        ("PMC4000003_F1.jpg", TALL, "What is the modality of this image?", ["CT", "MRI", "Ultrasound", "PET"], "C"),
    ]
    header = ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]
    with open(root / "test_clean.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, (fig, _, question, options, letter) in enumerate(items):
            # the real files mix "A:text" and " A: text"
            choices = [f"{'ABCD'[k]}:{o}" if i % 2 == 0 else f" {'ABCD'[k]}: {o} " for k, o in enumerate(options)]
            writer.writerow([fig, question, options["ABCD".index(letter)], *choices, letter])
    shutil.copy(root / "test_clean.csv", root / "test.csv")
    with zipfile.ZipFile(root / "images.zip", "w") as zf:
        for i, (fig, size, *_rest) in enumerate(items):
            zf.writestr(f"images/{fig}", image_bytes(size, 40 + i))
    rows = []
    for _fig, size, question, options, letter in items:
        wrong = "ABCD"[("ABCD".index(letter) + 1) % 4]
        rows.append(Row(question, letter, size, options=options, wrong=wrong))
    return Fixture("biores_pmc_vqa", "BIORES_PMC_VQA_PATH", root, rows, multiple_choice=True)


def build_pmc_vqa2(root: Path) -> Fixture:
    """Version-2 layout: ``test_2.csv`` (index, Figure_path, Caption, Question, Choice A..D, Answer
    = the letter, split) + ``images_2.zip``; a v1 ``test_clean.csv`` beside it must not be read."""
    root.mkdir(parents=True, exist_ok=True)
    items = [
        ("PMC5000001_F2.jpg", MID, "Which organ shows the lesion?", ["Liver", "Spleen", "Kidney", "Pancreas"], "C"),
        (
            "PMC6000002_F1.jpg",
            BIG,
            "What does the arrow point to?",
            ["A cyst", "A calcification", "A vessel", "A stent"],
            "A",
        ),
        ("PMC7000003_F4.jpg", SMALL, "What imaging technique is shown?", ["X-ray", "CT", "MRI", "Ultrasound"], "D"),
    ]
    header = [
        "index",
        "Figure_path",
        "Caption",
        "Question",
        "Choice A",
        "Choice B",
        "Choice C",
        "Choice D",
        "Answer",
        "split",
    ]
    with open(root / "test_2.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, (fig, _, question, options, letter) in enumerate(items):
            choices = [f"{'ABCD'[k]}:{o}" for k, o in enumerate(options)]
            writer.writerow([i, fig, f"caption {i}", question, *choices, letter, "test"])
    v1_header = "Figure_path,Question,Answer,Choice A,Choice B,Choice C,Choice D,Answer_label\n"
    (root / "test_clean.csv").write_text(v1_header)
    with zipfile.ZipFile(root / "images_2.zip", "w") as zf:
        for i, (fig, size, *_rest) in enumerate(items):
            zf.writestr(f"figures/{fig}", image_bytes(size, 80 + i))
    rows = [
        Row(q, letter, size, options=options, wrong="ABCD"[("ABCD".index(letter) + 1) % 4])
        for _f, size, q, options, letter in items
    ]
    return Fixture("biores_pmc_vqa2", "BIORES_PMC_VQA2_PATH", root, rows, multiple_choice=True)


# ----------------------------------------------------------------------------- MicroVQA


def build_microvqa(root: Path) -> Fixture:
    """Hub layout: ``data/test-00000-of-00001.parquet``, ``images_list`` a list of images."""
    from datasets import Features, List, Value
    from datasets import Image as HFImage

    items = [
        (
            [SMALL, BIG],
            "A fluorescence image shows punctate staining. What is the most likely organelle?",
            ["Mitochondria", "Lysosomes", "Golgi apparatus", "Nucleolus", "Endoplasmic reticulum"],
            1,
        ),
        (
            [MID],
            "What experiment would best test the hypothesis?",
            ["Knockdown of the gene", "Overexpression", "Drug washout", "Live imaging"],
            3,
        ),
        (
            [TALL],
            "Which cell type dominates the field?",
            ["Neurons", "Astrocytes", "Microglia", "Oligodendrocytes", "Pericytes", "Ependymal cells"],
            0,
        ),
    ]
    features = Features(
        {
            "key_question": Value("int64"),
            "key_image": Value("int64"),
            "images_list": List(HFImage()),
            "question": Value("string"),
            "choices": List(Value("string")),
            "correct_index": Value("int64"),
            "correct_answer": Value("string"),
            "task": Value("int64"),
            "task_str": Value("string"),
        }
    )
    columns: dict[str, list] = {k: [] for k in features}
    for i, (sizes, question, choices, correct) in enumerate(items):
        columns["key_question"].append(100 + i)
        columns["key_image"].append(200 + i)
        columns["images_list"].append([_hf_image(image_bytes(s, 50 + 5 * i + k)) for k, s in enumerate(sizes)])
        columns["question"].append(question)
        columns["choices"].append(choices)
        columns["correct_index"].append(correct)
        columns["correct_answer"].append(choices[correct])
        columns["task"].append(i % 3 + 1)
        columns["task_str"].append(["expert_visual_understanding", "hypothesis_gen", "experiment_proposal"][i % 3])
    _to_parquet(columns, features, root / "data" / "test-00000-of-00001.parquet")
    letters = "ABCDEFGH"
    rows = []
    for sizes, question, choices, correct in items:
        largest = max(sizes, key=lambda s: s[0] * s[1])
        rows.append(
            Row(question, letters[correct], largest, options=choices, wrong=letters[(correct + 1) % len(choices)])
        )
    return Fixture("biores_microvqa", "BIORES_MICROVQA_PATH", root, rows, multiple_choice=True)


# ----------------------------------------------------------------------------- uBench


def build_ubench(root: Path) -> Fixture:
    """Hub layout: ``perception/0.1.0/ubench-test-00000-of-00001.arrow`` + ``dataset_info.json``."""
    from datasets import ClassLabel, Dataset, Features, List, Value
    from datasets import Image as HFImage

    q = {
        "question": Value("string"),
        "options": List(Value("string")),
        "answer": Value("string"),
        "answer_idx": Value("int64"),
        "id": Value("string"),
        "name": Value("string"),
    }
    qtypes = ["classification", "domain", "modality", "stain", "subdomain", "submodality"]
    names = [
        "lymphocyte",
        "neutrophil",
        "basophil",
        "metaphase",
        "anaphase",
        "adipose",
        "stroma",
        "g1",
        "s",
        "g2",
        "pollen",
        "debris",
    ]
    features = Features(
        {
            "image_id": Value("string"),
            "image": HFImage(),
            "label": ClassLabel(names=names),
            "label_name": Value("string"),
            "dataset": Value("string"),
            "domain": Value("string"),
            "modality": Value("string"),
            "stain": Value("string"),
            "subdomain": Value("string"),
            "submodality": Value("string"),
            "questions": {t: q for t in qtypes},
        }
    )
    items = [  # (size, dataset, question, options, answer index) ; None = no classification question
        (
            BIG,
            "acevedo_et_al_2020",
            "What type of blood cell is shown?",
            ["lymphocyte", "neutrophil", "basophil", "none of the above"],
            2,
        ),
        (SMALL, None, "Which cell-cycle phase is this cell in?", ["metaphase", "anaphase", "none of the above"], 0),
        (MID, "kather_et_al_2016", None, None, None),
        (MID, "kather_et_al_2016", "What tissue class is shown?", ["adipose", "stroma", "none of the above"], 1),
        (
            TALL,
            "acevedo_et_al_2020",
            "What type of blood cell is shown?",
            ["lymphocyte", "neutrophil", "basophil", "none of the above"],
            0,
        ),
        # eVLLM's list keeps it; its post-hoc table drops it
        (SMALL, "eulenberg_et_al_2017_darkfield", "Which phase?", ["g1", "s", "g2", "none of the above"], 2),
        (MID, "not_in_the_paper_2030", "What is shown?", ["pollen", "debris", "none of the above"], 0),  # dropped
        # a null data set asking kather_et_al_2016's options: resolved to it
        (BIG, None, "What tissue class is shown?", ["adipose", "stroma", "none of the above"], 0),
    ]
    columns: dict[str, list] = {k: [] for k in features}
    for i, (size, source, question, options, idx) in enumerate(items):
        columns["image_id"].append(f"img{i}")
        columns["image"].append(
            _hf_image(image_bytes(size, 60 + i, "L" if i == 1 else "RGB", "PNG" if i == 1 else "JPEG"))
        )
        answer = options[idx] if options else None
        columns["label"].append(names.index(answer) if answer in names else 0)
        columns["label_name"].append(answer or "adipose")
        columns["dataset"].append(source)
        for col in ("domain", "modality", "stain", "subdomain", "submodality"):
            columns[col].append(f"{col}-{i}")
        questions = {t: None for t in qtypes}
        questions["domain"] = {
            "question": "What is the domain?",
            "options": ["pathology", "cell biology", "none of the above"],
            "answer": "pathology",
            "answer_idx": 0,
            "id": f"d{i}",
            "name": "domain",
        }
        if question is not None:
            questions["classification"] = {
                "question": question,
                "options": options,
                "answer": answer,
                "answer_idx": idx,
                "id": f"c{i}",
                "name": "classification",
            }
        columns["questions"].append(questions)
    saved = root.parent / f".{root.name}-save"
    Dataset.from_dict(columns, features=features).save_to_disk(str(saved))
    target = root / "perception" / "0.1.0"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(next(saved.glob("*.arrow")), target / "ubench-test-00000-of-00001.arrow")
    shutil.copy(saved / "dataset_info.json", target / "dataset_info.json")
    shutil.rmtree(saved)
    rows = []  # the fine-grained rows of eVLLM's data-set list, in order
    for size, source, question, options, idx in items:
        if question is None or source == "not_in_the_paper_2030":
            continue
        rows.append(Row(question, "ABCD"[idx], size, options=options, wrong="ABCD"[(idx + 1) % len(options)]))
    return Fixture("biores_ubench", "BIORES_UBENCH_PATH", root, rows, multiple_choice=True)


BUILDERS = {
    "vqa_rad": build_vqa_rad,
    "slake": build_slake,
    "pathvqa": build_pathvqa,
    "pmc_vqa": build_pmc_vqa,
    "pmc_vqa2": build_pmc_vqa2,
    "microvqa": build_microvqa,
    "ubench": build_ubench,
}


def build_all(root: Path) -> dict[str, Fixture]:
    return {name: build(root / name) for name, build in BUILDERS.items()}
