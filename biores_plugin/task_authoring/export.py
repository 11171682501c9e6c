"""``biores export-task``: a self-contained lmms-eval task folder for a data set biores adds.

The folder (``<name>.yaml``, ``utils.py``, ``README.md``) is lmms-eval's own layout and imports
nothing from biores: ``utils.py`` is assembled from the very functions biores' task uses (their
source, found with ``ast``) plus lmms-eval glue, so the exported protocol cannot drift from
biores'. The task is the native point only (no sweep) and keeps the hub id as ``dataset_path``.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BioresConfigError
from ..io_utils import atomic_write_text
from ..task_library.folders import tasks_dir

_HEADER = '''"""{title} for lmms-eval: {protocol}.

Exported by `biores export-task {name}` from biores' task of the same protocol; self-contained
(no biores import). Sources and deviations: README.md.
"""

import difflib  # noqa: F401
import io  # noqa: F401
import re  # noqa: F401
import string  # noqa: F401
import zipfile  # noqa: F401
from collections import Counter  # noqa: F401
from functools import lru_cache  # noqa: F401
from typing import Any, Iterable, Sequence  # noqa: F401

'''

_VQA_GLUE = '''

def process_docs(dataset):
    """Closed questions are those whose answer is yes/no (the dataset card's definition)."""
    closed = [closed_by_answer(a) for a in dataset["answer"]]
    return dataset.add_column("question_type", ["closed" if c else "open" for c in closed])


def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{str(doc['question']).strip()}{kwargs.get('post_prompt', '')}"


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    content = [{"type": "image", "url": image} for image in doc_to_visual(doc)]
    text = doc_to_text(doc, lmms_eval_specific_kwargs)
    return [{"role": "user", "content": content + [{"type": "text", "text": text}]}]


def process_results(doc, results):
    record = llava_med_record(results[0] if results else "", doc["answer"], doc["question_type"] == "closed")
    return {"accuracy": record, "closed_accuracy": record, "open_recall": record}


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def aggregate_accuracy(results):
    return _mean(r["score"] for r in results)


def aggregate_closed(results):
    return _mean(r["score"] for r in results if r["question_type"] == "closed")


def aggregate_open_recall(results):
    return _mean(r["score"] for r in results if r["question_type"] == "open")
'''

_PMC_GLUE = """
CHOICE_COLUMNS = ("Choice A", "Choice B", "Choice C", "Choice D")
process_docs = _prepare


@lru_cache(maxsize=1)
def _images_zip():
    from huggingface_hub import snapshot_download

    folder = snapshot_download(repo_id="xmcmic/PMC-VQA", repo_type="dataset", allow_patterns=["images.zip"])
    return folder + "/images.zip"


@lru_cache(maxsize=1)
def _members():
    with zipfile.ZipFile(_images_zip()) as archive:
        return {name.rsplit("/", 1)[-1]: name for name in archive.namelist() if not name.endswith("/")}


def doc_to_visual(doc):
    from PIL import Image

    name = str(doc["Figure_path"]).strip()
    if name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"Figure_path {name!r} leaves the image archive")
    with zipfile.ZipFile(_images_zip()) as archive:
        return [Image.open(io.BytesIO(archive.read(_members()[name.rsplit("/", 1)[-1]]))).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    text = medvint_prompt(doc["Question"], [doc[c] for c in CHOICE_COLUMNS])
    return f"{kwargs.get('pre_prompt', '')}{text}{kwargs.get('post_prompt', '')}"


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    content = [{"type": "image", "url": image} for image in doc_to_visual(doc)]
    text = doc_to_text(doc, lmms_eval_specific_kwargs)
    return [{"role": "user", "content": content + [{"type": "text", "text": text}]}]


def doc_to_target(doc):
    return doc["answer_letter"]


def process_results(doc, results):
    picked = nearest_choice([doc[c] for c in CHOICE_COLUMNS], results[0] if results else "")
    return {"accuracy": float(picked is not None and picked == int(doc["answer_idx"]))}
"""

_UBENCH_GLUE = '''

class BioresConfigError(ValueError):
    """Bad data (biores' error class, standing in here)."""


process_docs = _prepare


def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{prompt(doc['question'], doc['options'])}{kwargs.get('post_prompt', '')}"


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    content = [{"type": "image", "url": image} for image in doc_to_visual(doc)]
    text = doc_to_text(doc, lmms_eval_specific_kwargs)
    return [{"role": "user", "content": content + [{"type": "text", "text": text}]}]


def doc_to_target(doc):
    return gold(doc["options"], int(doc["answer_idx"]))


def process_results(doc, results):
    score = float(check_prediction(results[0] if results else "", doc["options"], int(doc["answer_idx"])))
    record = {"score": score, "dataset": doc["source_dataset"]}
    return {"accuracy": record, "accuracy_without_eulenberg": record, "macro_dataset_accuracy": record}


def aggregate_accuracy(results):
    return sum(r["score"] for r in results) / len(results) if results else 0.0


def aggregate_without_eulenberg(results):
    return aggregate_accuracy([r for r in results if r["dataset"] not in POSTHOC_DROPPED])


def aggregate_macro_dataset(results):
    groups = {}
    for r in results:
        groups.setdefault(str(r["dataset"]), []).append(r["score"])
    return sum(sum(v) / len(v) for v in groups.values()) / len(groups) if groups else 0.0
'''


@dataclass(frozen=True)
class Export:
    """One exportable data set: its biores template, the source pieces and the glue."""

    title: str
    protocol: str
    folder: str  # biores task folder under tasks/
    pieces: tuple[tuple[str, tuple[str, ...]], ...]  # (module, top-level names) copied by source
    glue: str
    metrics: tuple[str, ...]


EXPORTS = {
    "vqa_rad": Export(
        "VQA-RAD",
        "LLaVA-Med's protocol (closed yes/no accuracy, open token recall)",
        "biores_vqa_rad",
        (
            ("biores_plugin.task_library.scoring", ("_PUNCT", "_ARTICLES", "normalize_answer", "closed_by_answer")),
            (
                "biores_plugin.task_library.protocols",
                (
                    "_LM_PUNCT",
                    "_LM_DIGIT_COMMA",
                    "_LM_PERIOD",
                    "_LM_NUMBER_WORDS",
                    "_LM_ARTICLES",
                    "llava_med_normalize",
                    "_word_counts",
                    "llava_med_recall",
                    "llava_med_closed_hit",
                    "llava_med_record",
                ),
            ),
        ),
        _VQA_GLUE,
        ("accuracy", "closed_accuracy", "open_recall"),
    ),
    "pmc_vqa": Export(
        "PMC-VQA test-clean",
        "the authors' MedVInT choice test (nearest choice by difflib)",
        "biores_pmc_vqa",
        (
            ("biores_plugin.task_library.protocols", ("medvint_prompt", "nearest_choice")),
            ("biores_plugin.tasks.biores_pmc_vqa.utils", ("LETTERS", "_PREFIX", "strip_letter", "_column", "_prepare")),
        ),
        _PMC_GLUE,
        ("accuracy",),
    ),
    "ubench": Export(
        "uBench (μ-Bench perception)",
        "the authors' protocol (eVLLM prompt and check_prediction)",
        "biores_ubench",
        (
            (
                "biores_plugin.task_library.evllm",
                (
                    "INSTRUCTION",
                    "CHECK_LETTERS",
                    "PREFIXES",
                    "DATASETS",
                    "POSTHOC_DROPPED",
                    "FINE",
                    "UNRESOLVED",
                    "correct_index",
                    "usable",
                    "lettered_options",
                    "prompt",
                    "gold",
                    "check_prediction",
                    "resolve_datasets",
                    "in_paper",
                ),
            ),
            (
                "biores_plugin.tasks.biores_ubench.utils",
                ("QUESTION", "_correct_index", "_usable", "sources", "flatten", "_prepare"),
            ),
        ),
        _UBENCH_GLUE,
        ("accuracy", "accuracy_without_eulenberg", "macro_dataset_accuracy"),
    ),
}
EXPORTS["pathvqa"] = Export(
    "PathVQA",
    EXPORTS["vqa_rad"].protocol,
    "biores_pathvqa",
    EXPORTS["vqa_rad"].pieces,
    _VQA_GLUE,
    EXPORTS["vqa_rad"].metrics,
)
_CUSTOM_AGG = {
    "closed_accuracy": "aggregate_closed",
    "open_recall": "aggregate_open_recall",
    "accuracy": "aggregate_accuracy",
    "macro_dataset_accuracy": "aggregate_macro_dataset",
    "accuracy_without_eulenberg": "aggregate_without_eulenberg",
}


def _module_file(module_name: str) -> Path:
    """The source file of a biores module, found by its name (read as text, never imported: the
    task folders import the task library, so importing them from here would close a loop)."""
    parts = module_name.split(".")
    if parts[:2] == ["biores_plugin", "tasks"]:
        return tasks_dir().joinpath(*parts[2:]).with_suffix(".py")
    return Path(__file__).resolve().parents[1].joinpath(*parts[1:]).with_suffix(".py")


def source_of(module_name: str, names: Sequence[str]) -> str:
    """The source of top-level definitions ``names`` of a module, in the module's order."""
    text = _module_file(module_name).read_text()
    wanted, out = set(names), []
    for node in ast.parse(text).body:
        targets = (
            [node.name]
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            else [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            if isinstance(node, ast.Assign)
            else []
        )
        if wanted & set(targets):
            out.append(ast.get_source_segment(text, node, padded=False))
            wanted -= set(targets)
    if wanted:
        raise BioresConfigError(f"export: {module_name} has no top-level {', '.join(sorted(wanted))}")
    return "\n\n\n".join(out) + "\n"


def utils_source(name: str, spec: Export) -> str:
    parts = [_HEADER.format(title=spec.title, protocol=spec.protocol, name=name)]
    seen: set[str] = set()
    for module, names in spec.pieces:
        fresh = tuple(n for n in names if n not in seen)
        seen.update(fresh)
        if fresh:
            parts.append(f"# --- from {module}\n\n" + source_of(module, fresh))
    parts.append("# --- lmms-eval task functions\n" + spec.glue)
    return "\n\n".join(parts)


def task_yaml(name: str, spec: Export) -> str:
    """The biores template's settings as a stand-alone task (no sweep, no biores-only keys)."""
    from lmms_eval import utils

    config = utils.load_yaml_config(str(tasks_dir() / spec.folder / "_default_template_yaml"), mode="simple")
    lines = [
        f"# {spec.title} under {spec.protocol}.",
        f"# Exported by `biores export-task {name}`; see README.md.",
        f"task: {name}",
        f"dataset_path: {config['dataset_path']}",
    ]
    for key in ("dataset_kwargs", "test_split", "output_type"):
        if key in config:
            lines.append(f"{key}: {json.dumps(config[key])}")
    lines += [
        "process_docs: !function utils.process_docs",
        "doc_to_visual: !function utils.doc_to_visual",
        "doc_to_text: !function utils.doc_to_text",
        "doc_to_messages: !function utils.doc_to_messages",
        f"doc_to_target: {'!function utils.doc_to_target' if name in ('pmc_vqa', 'ubench') else 'answer'}",
        "process_results: !function utils.process_results",
        f"generation_kwargs: {json.dumps(config['generation_kwargs'])}",
        "metric_list:",
    ]
    for metric in spec.metrics:
        aggregation = "mean" if name == "pmc_vqa" else f"!function utils.{_CUSTOM_AGG[metric]}"
        lines += [f"  - metric: {metric}", f"    aggregation: {aggregation}", "    higher_is_better: true"]
    lines.append(f"lmms_eval_specific_kwargs: {json.dumps(config['lmms_eval_specific_kwargs'])}")
    metadata = {k: v for k, v in config["metadata"].items() if k in ("version", "dataset", "protocol")}
    lines.append(f"metadata: {json.dumps(metadata, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def readme(name: str, spec: Export, out: Path) -> str:
    source = (tasks_dir() / spec.folder / "README.md").read_text()
    protocol = source[source.index("## Protocol") :].split("\n## ")[0] if "## Protocol" in source else ""
    protocol = "## Protocol" + protocol[protocol.index("\n") :] if protocol else ""  # no biores sweep names
    protocol = protocol.replace("biores_plugin/task_library/protocols.py", "utils.py").replace(
        "all in `utils.py`", "all in `utils.py`"
    )
    return (
        f"# {name}: {spec.title}\n\n{spec.protocol}. Exported by `biores export-task {name}` for contribution to\n"
        "lmms-eval: a stock lmms-eval loads it through `--include_path` (or as `lmms_eval/tasks/"
        + name
        + "`); it imports\n"
        "nothing from biores. It is biores' native point; biores' own task adds the resolution sweep.\n\n"
        f"{protocol.strip()}\n\n## Run\n\n```bash\nlmms-eval --include_path {out.resolve()} --model MODEL --model_args "
        f"... \\\n"
        f"    --tasks {name} --log_samples --output_path results/\n```\n"
    )


def export_task(name: str, out: str | Path) -> Path:
    """Write ``out/<name>/`` (``<name>.yaml``, ``utils.py``, ``README.md``) and return it."""
    key = name[len("biores_") :] if name.startswith("biores_") else name
    if key not in EXPORTS:
        extra = (
            " (biores' own synthetic benchmark needs biores to generate its data)"
            if key == "synth"
            else " (lmms-eval ships it already: biores' sweep wraps that task)"
            if key in ("slake", "microvqa")
            else ""
        )
        raise BioresConfigError(f"cannot export {name!r}{extra}; exportable: {', '.join(sorted(EXPORTS))}")
    spec = EXPORTS[key]
    folder = Path(out) / key
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    atomic_write_text(folder / f"{key}.yaml", task_yaml(key, spec))
    atomic_write_text(folder / "utils.py", utils_source(key, spec))
    atomic_write_text(folder / "README.md", readme(key, spec, Path(out)))
    return folder


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", help=f"data sets to export: {', '.join(sorted(EXPORTS))}")
    parser.add_argument("--out", required=True, help="folder to write the task folders into")


def run(args: argparse.Namespace) -> int:
    for name in args.names:
        folder = export_task(name, args.out)
        print(
            f"wrote {folder}; run with: lmms-eval --include_path {Path(args.out).resolve()} --tasks {folder.name} ..."
        )
    return 0
