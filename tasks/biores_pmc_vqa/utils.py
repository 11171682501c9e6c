"""biores_pmc_vqa: PMC-VQA (test-clean, multiple choice) as an inference-resolution sweep.

Data: ``xmcmic/PMC-VQA`` on the Hugging Face hub, or a local copy named by
``$BIORES_PMC_VQA_PATH`` (see README.md).

Schema (verified from the dataset card and file listing): csv metafiles ``train.csv``,
``test.csv`` and ``test_clean.csv`` (version 1), plus ``train_2.csv`` / ``test_2.csv``
(version 2), and the figures in ``images.zip`` (18.9 GB; ``images_2.zip`` for version 2).
Version-1 rows have ``Figure_path`` (file name, e.g. ``PMC1064097_F1.jpg``), ``Question``,
``Answer`` (answer text), ``Choice A`` .. ``Choice D`` (text with a letter prefix, e.g.
``"B:Focal uptake pattern"`` or ``" B: Left Anterior Descending "``) and ``Answer_label``
(the correct letter); that ``test_clean.csv`` has this 8-column layout is confirmed by public
code that reads the file, not by the card. The card's explanation spells the answer keys
``Anwser`` / ``Anwser_label`` in places; both spellings are accepted. Version-2 rows
(``index, Figure_path, Caption, Question, Choice A..D, Answer, split``, where ``Answer`` is the
letter) are read too (layout from public code, not checked against the files). The layout
inside ``images.zip`` could not be listed here; images are looked up as
``images/<Figure_path>``, ``figures/<Figure_path>``, ``<Figure_path>`` or any member with that
file name.

Split: ``test_clean.csv`` (the 2k manually checked test-clean set PMC-VQA results are usually
quoted on) as the ``test`` split (``dataset_kwargs.data_files``).

Protocol (``_default_template_yaml``): the PMC-VQA authors' MedVInT "choice" test
(xiaoman-zhang/PMC-VQA, ``src/MedVInT_TD``): the prompt ``Question: <q>Choices:<A><B><C><D>The
Answer is:`` with the stored choice strings concatenated as they are, the image first; a
response is right when the choice most similar to it (``difflib`` ratio) is the correct one.
The correct choice is ``Answer_label``'s (MedVInT matches the answer text to the choices, which
gives the same choice). ``_direct_template_yaml``: biores' fast variant, options as ``A. ...``
(prefixes stripped), the leading letter or else the first option text named.
"""

from __future__ import annotations

import re
from typing import Any

from biores_plugin.task_library.archive import image_archive
from biores_plugin.task_library.images import aggregate_skipped  # noqa: F401  (yaml !function target)
from biores_plugin.task_library.protocols import medvint_prompt, nearest_choice
from biores_plugin.task_library.scoring import aggregate_score, choice_record, lettered, sweep_fields
from biores_plugin.task_library.sweep import archive_images, chat_messages, prompt_text, skipped_results, sweep_getattr

REPO_ID = "xmcmic/PMC-VQA"
ENV = "BIORES_PMC_VQA_PATH"
LETTERS = "ABCD"
_PREFIX = re.compile(r"^\s*\(?([A-Da-d])\s*[:\.\)]\s*")


def images():
    return image_archive(
        ENV,
        REPO_ID,
        zips=["images.zip", "images_2.zip"],
        folders=["images", "figures", "images_2"],
        what="PMC-VQA figures (images.zip or images/)",
        hub_files=["images.zip"],  # test_clean.csv's figures; images_2.zip only serves version 2
    )


def strip_letter(choice: Any, letter: str) -> str:
    """``"B:Focal uptake"`` / ``" B: Focal uptake"`` / ``"B. Focal"`` -> the option text."""
    text = "" if choice is None else str(choice).strip()
    m = _PREFIX.match(text)
    if m and m.group(1).upper() == letter:
        text = text[m.end() :]
    return text.strip()


def _column(dataset: Any, *names: str) -> str | None:
    for name in names:
        if name in dataset.column_names:
            return name
    return None


def _prepare(dataset: Any) -> Any:
    """Add ``options`` (4 texts), ``answer_idx`` and ``answer_letter`` from either csv version."""
    choice_cols = [_column(dataset, f"Choice {x}", f"choice {x.lower()}") for x in LETTERS]
    if None in choice_cols:
        raise ValueError(f"PMC-VQA csv lacks the 'Choice A'..'Choice D' columns: {dataset.column_names}")
    label_col = _column(dataset, "Answer_label", "Anwser_label")
    text_col = _column(dataset, "Answer", "Anwser")
    labels = list(dataset[label_col]) if label_col else [None] * len(dataset)
    texts = list(dataset[text_col]) if text_col else [None] * len(dataset)
    columns = [list(dataset[c]) for c in choice_cols]
    options, idx = [], []
    for row in range(len(dataset)):
        opts = [strip_letter(columns[k][row], LETTERS[k]) for k in range(4)]
        label = str(labels[row] or "").strip().upper()[:1]
        if not label or label not in LETTERS:  # version 2: ``Answer`` holds the letter; else match the text
            answer = str(texts[row] or "").strip()
            label = answer.upper() if len(answer) == 1 and answer.upper() in LETTERS else ""
            if not label:  # the choice most similar to the answer text, as MedVInT's test does
                picked = nearest_choice(opts, answer)
                label = LETTERS[picked] if picked is not None else "A"
        options.append(opts)
        idx.append(LETTERS.index(label))
    for name, values in (("options", options), ("answer_idx", idx), ("answer_letter", [LETTERS[i] for i in idx])):
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
        dataset = dataset.add_column(name, values)
    return dataset


def _sizes(dataset: Any) -> list[tuple[int, int]]:
    return images().sizes(dataset["Figure_path"])


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=_prepare, image_column=None, sizes_fn=_sizes)


CHOICE_COLUMNS = ("Choice A", "Choice B", "Choice C", "Choice D")


def doc_to_visual(doc):
    return archive_images(doc, images(), doc["Figure_path"])


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    """MedVInT's choice prompt, the stored choice strings as they are."""
    return prompt_text(medvint_prompt(doc["Question"], [doc[c] for c in CHOICE_COLUMNS]), lmms_eval_specific_kwargs)


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc), doc_to_text(doc, lmms_eval_specific_kwargs))


def doc_to_target(doc):
    return doc["answer_letter"]


def process_results(doc, results):
    """Right when the choice nearest to the response (``difflib``) is the correct one."""
    response = results[0] if results else ""
    picked = nearest_choice([doc[c] for c in CHOICE_COLUMNS], response)
    record = {
        "score": float(picked is not None and picked == int(doc["answer_idx"])),
        "answer": LETTERS[int(doc["answer_idx"])],
        "chosen": None if picked is None else LETTERS[picked],
        "response": str(response),
        "figure": doc["Figure_path"],
        **sweep_fields(doc),
    }
    return skipped_results(doc, {"accuracy": record})


# biores' fast direct-answer variant (_direct_template_yaml)


def direct_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return prompt_text(f"{str(doc['Question']).strip()}\n{lettered(doc['options'])}", lmms_eval_specific_kwargs)


def direct_doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc), direct_doc_to_text(doc, lmms_eval_specific_kwargs))


def direct_process_results(doc, results):
    response = results[0] if results else ""
    record = choice_record(doc, response, doc["options"], int(doc["answer_idx"]), figure=doc["Figure_path"])
    return skipped_results(doc, {"accuracy": record})


aggregate_accuracy = aggregate_score
