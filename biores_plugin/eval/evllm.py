"""uBench / μ-Bench scored as its authors score it (``Ale9806/eVLLM``, commit c6108d4).

Prompt (``src/evlm/inference/generative_inference.py``, ``evaluate_dataset``)::

    prompt + "\\n" + "Question:" + question + "\\n" + "\\n".join(options)

with ``prompt = "Answer with a single letter, no extra details."`` and the options lettered by
``inference/utils.py`` ``add_alphabet`` (``"A) "`` .. ``"H) "`` prefixed); the gold answer is
lettered the same way (``"B) basophil"``) and ``correct_idx = options.index(answer)``.

Score (``src/evlm/eval/eval_utils.py`` ``check_prediction``, as of the repository's HEAD)::

    correct_letter = ["A","B","C","D","E","F","G"][correct_idx]
    correct_answer in prediction or correct_letter in prediction[0:1]

i.e. case-sensitive: the lettered gold option is a substring of the response, or the
response's first character is the gold letter. (An older revision, 3ee7b66, lowercased both
sides and matched the first three characters ``"b) "``; the rebuttal-era HEAD is followed here.)
Their letter list stops at G, so an eighth option would raise there; here it is ``H``.

Data-set list: ``src/evlm/inference/constants.py`` ``DATASETS`` (the 23 fine-grained sets their
inference and ``eval_utils.tasks_metadata`` use); ``eval/eval_posthoc_rebutall_finegrained.py``
drops the two Eulenberg sets below from its post-hoc tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import BioresConfigError

INSTRUCTION = "Answer with a single letter, no extra details."
CHECK_LETTERS = ("A", "B", "C", "D", "E", "F", "G")  # check_prediction's list
PREFIXES = ("A) ", "B) ", "C) ", "D) ", "E) ", "F) ", "G) ", "H) ")  # add_alphabet's

DATASETS = (
    "acevedo_et_al_2020",
    "burgess_et_al_2024_contour",
    "burgess_et_al_2024_eccentricity",
    "burgess_et_al_2024_texture",
    "colocalization_benchmark",
    "empiar_sbfsem",
    "eulenberg_et_al_2017_brightfield",
    "eulenberg_et_al_2017_darkfield",
    "eulenberg_et_al_2017_epifluorescence",
    "held_et_al_2010_galt",
    "held_et_al_2010_h2b",
    "held_et_al_2010_mt",
    "hussain_et_al_2019",
    "icpr2020_pollen",
    "jung_et_al_2022",
    "kather_et_al_2016",
    "kather_et_al_2018",
    "kather_et_al_2018_val7k",
    "nirschl_et_al_2018",
    "nirschl_unpub_fluorescence",
    "tang_et_al_2019",
    "wong_et_al_2022",
    "wu_et_al_2023",
)
POSTHOC_DROPPED = ("eulenberg_et_al_2017_darkfield", "eulenberg_et_al_2017_epifluorescence")
FINE = "classification"
COARSE = ("domain", "modality", "stain", "subdomain", "submodality")
UNRESOLVED = "dataset_null"  # prefix of rows whose null ``dataset`` could not be resolved


def correct_index(q: dict[str, Any]) -> int:
    """``options.index(answer)`` as eVLLM; the release's ``answer_idx`` when the text is absent."""
    options = [str(o) for o in q["options"]]
    answer = q.get("answer")
    if answer is not None and str(answer) in options:
        return options.index(str(answer))
    if q.get("answer_idx") is None or not 0 <= int(q["answer_idx"]) < len(options):
        raise BioresConfigError(f"uBench question {q.get('id')!r}: answer {answer!r} is not among its options")
    return int(q["answer_idx"])


def usable(q: Any) -> bool:
    return (
        isinstance(q, dict)
        and bool(q.get("question"))
        and bool(q.get("options"))
        and (q.get("answer") is not None or q.get("answer_idx") is not None)
    )


def lettered_options(options: Sequence[Any]) -> list[str]:
    if len(options) > len(PREFIXES):
        raise BioresConfigError(f"uBench question with {len(options)} options; eVLLM letters at most {len(PREFIXES)}")
    return [PREFIXES[i] + str(o) for i, o in enumerate(options)]


def prompt(question: Any, options: Sequence[Any]) -> str:
    """eVLLM's template, verbatim (no stripping: the stored strings as they are)."""
    return INSTRUCTION + "\n" + "Question:" + str(question) + "\n" + "\n".join(lettered_options(options))


def gold(options: Sequence[Any], idx: int) -> str:
    """The lettered gold option, ``"B) basophil"``."""
    return lettered_options(options)[idx]


def check_prediction(prediction: Any, options: Sequence[Any], idx: int) -> bool:
    """eVLLM's ``check_prediction`` on one response (see the module docstring)."""
    prediction = "" if prediction is None else str(prediction)
    letter = CHECK_LETTERS[idx] if idx < len(CHECK_LETTERS) else PREFIXES[idx][0]
    return gold(options, idx) in prediction or letter in prediction[0:1]


def resolve_datasets(names: Sequence[Any], option_sets: Sequence[Sequence[Any] | None]) -> list[str]:
    """Each row's source data set; a null one taken from the named rows that ask the same
    options (when exactly one data set does), else ``dataset_null:<n>`` (one per option set)."""
    by_options: dict[tuple, set[str]] = {}
    for name, opts in zip(names, option_sets, strict=True):
        if name and opts:
            by_options.setdefault(tuple(str(o) for o in opts), set()).add(str(name))
    unresolved: dict[tuple, str] = {}
    out = []
    for name, opts in zip(names, option_sets, strict=True):
        if name:
            out.append(str(name))
            continue
        key = tuple(str(o) for o in opts or ())
        owners = by_options.get(key, set())
        if len(owners) == 1:
            out.append(next(iter(owners)))
        else:
            out.append(unresolved.setdefault(key, f"{UNRESOLVED}:{len(unresolved) + 1}"))
    return out


def in_paper(name: str) -> bool:
    """In eVLLM's fine-grained list, or a null-``dataset`` row kept and reported as such."""
    return name in DATASETS or name.startswith(UNRESOLVED)
