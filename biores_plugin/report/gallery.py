"""The flip gallery: samples whose correctness changes across inference levels, with what the
model was handed at each level.

lmms-eval's samples log keeps no image (``doc`` is logged without its media), and biores'
per-sample records keep the sizes only (``eff_size``). The image at each level is therefore
re-derived: the task is loaded through lmms-eval with the biores plugin, its doc is read from
the same data, and the task's own ``doc_to_visual`` (biores' checked loader and downsampling,
the code the run used) is called with the doc's level set to each level. Where the data are not
reachable, the gallery says so per task instead of showing an image.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from ..errors import BioresError
from .collect import _TASK, _load_json, _model_path, _read_lines, _results_files, _samples_file
from .tables import _order

RIGHT = 0.5  # a sample counts as right at a level when its score is at least this (scores are 0/1 or recall)
DETAIL = 0.25  # the centre crop shown at 1:1 pixels: this fraction of each side


@dataclass
class Level:
    resolution: str
    score: float
    response: str
    eff_size: tuple[int, int] | None
    consumed: tuple[int, int] | None = None  # what the model's processor fed its tower, when logged
    thumbs: list[str] = field(default_factory=list)  # data: URIs of the images handed to the model
    details: list[str] = field(default_factory=list)  # their centre crops, pixels as received


@dataclass
class Flip:
    run: str
    prefix: str  # the sweep, e.g. biores_vqa_rad
    doc_id: int
    question: str
    answer: str
    levels: list[Level]
    flips: int  # neighbouring levels whose right/wrong differ


@dataclass
class Gallery:
    flips: dict[tuple[str, str], list[Flip]]  # (run, sweep) -> flips, most flips first
    total: dict[tuple[str, str], int]  # (run, sweep) -> how many samples flip before the cap
    notes: dict[str, str]  # sweep -> why images could not be re-derived
    task_names: dict[str, str]  # sweep -> one task of it (to load docs)


def _text(value: Any, limit: int = 400) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
        if isinstance(value, list):
            value = value[0] if value else ""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _record(sample: dict, metric: str) -> dict | None:
    record = sample.get(metric)
    if isinstance(record, dict) and "score" in record:
        return record
    wrapped = sample.get("biores")
    return wrapped if isinstance(wrapped, dict) and wrapped.get("score") is not None else None


def _question(sample: dict) -> str:
    doc = sample.get("doc") if isinstance(sample.get("doc"), dict) else {}
    for key in ("question", "Question", "text"):
        if doc.get(key):
            return _text(doc[key])
    args = sample.get("arguments") or []
    return _text(next((a for a in args if isinstance(a, str)), ""))


def read_levels(
    folders: Iterable[str | Path], metric: str = "accuracy", labels: dict[str, str] | None = None
) -> tuple[dict, dict]:
    """``{(run, sweep, doc_id): {level: (score, response, answer, question, eff, consumed)}}``; runs
    named as :func:`collect` names them (the ``--label`` of the folder, else the model's name)."""
    labels = {str(Path(k).resolve()): v for k, v in (labels or {}).items()}
    table: dict[tuple[str, str, int], dict[str, tuple]] = {}
    names: dict[str, str] = {}
    for folder in folders:
        folder = Path(folder)
        for results_file in _results_files(folder):
            data = _load_json(results_file, [])
            if data is None:
                continue
            run = labels.get(str(folder.resolve())) or Path(_model_path(data.get("config") or {}) or folder).name
            for task in data.get("results") or {}:
                m = _TASK.match(task)
                samples = _samples_file(results_file, task) if m else None
                rows = _read_lines(samples, []) if samples is not None else None
                if not rows:
                    continue
                names.setdefault(m.group(1), task)
                for sample in rows:
                    record = _record(sample, metric) if isinstance(sample, dict) else None
                    if record is None or "doc_id" not in sample:
                        continue
                    counts = next((c for c in sample.get("token_counts") or [] if isinstance(c, dict)), {})
                    consumed = (counts.get("visual_tokens_sizes") or [None])[0]
                    table.setdefault((run, m.group(1), int(sample["doc_id"])), {})[m.group(2)] = (
                        float(record["score"]),
                        _text(record.get("response", sample.get("filtered_resps")), 200),
                        _text(record.get("answer", sample.get("target")), 200),
                        _question(sample),
                        tuple(record["eff_size"]) if record.get("eff_size") else None,
                        tuple(consumed) if consumed else None,
                    )
    return table, names


def find_flips(
    folders: Iterable[str | Path], cap: int, metric: str = "accuracy", labels: dict[str, str] | None = None
) -> Gallery:
    """Per (run, sweep), the samples whose right/wrong changes across levels, most flips first, at most ``cap``."""
    table, names = read_levels(folders, metric, labels)
    grouped: dict[tuple[str, str], list[Flip]] = {}
    for (run, prefix, doc_id), by_level in sorted(table.items()):
        levels = _order(by_level)
        right = [by_level[r][0] >= RIGHT for r in levels]
        flips = sum(a != b for a, b in pairwise(right))
        if len(levels) < 2 or not flips:
            continue
        first = by_level[levels[-1]]
        grouped.setdefault((run, prefix), []).append(
            Flip(
                run,
                prefix,
                doc_id,
                first[3],
                first[2],
                [Level(r, by_level[r][0], by_level[r][1], by_level[r][4], by_level[r][5]) for r in levels],
                flips,
            )
        )
    total = {key: len(v) for key, v in grouped.items()}
    capped = {key: sorted(v, key=lambda f: (-f.flips, f.doc_id))[:cap] for key, v in grouped.items()}
    return Gallery(capped, total, {}, names)


def _data_uri(image: Any, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _thumb(image: Any, longest: int) -> str:
    """The received image, downscaled for display only when its longest side exceeds ``longest``."""
    from PIL import Image

    if max(image.size) > longest:
        scale = longest / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    return _data_uri(image)


def _detail(image: Any) -> str:
    """The centre ``DETAIL`` of the received image, its pixels untouched (shown enlarged, pixelated)."""
    w, h = image.size
    cw, ch = max(1, round(w * DETAIL)), max(1, round(h * DETAIL))
    left, top = (w - cw) // 2, (h - ch) // 2
    return _data_uri(image.crop((left, top, left + cw, top + ch)))


def _load_tasks(names: Sequence[str]) -> dict[str, Any]:
    from lmms_eval.tasks import TaskManager, get_task_dict

    from ..lmms_plugin.plugin import install, is_installed

    if not is_installed():
        install()
    return get_task_dict(list(names), TaskManager("ERROR", include_defaults=False))


def _missing_synth(task_name: str) -> str | None:
    """The synthetic sweep's data when neither ``$BIORES_SYNTH_PATH`` nor the default set exists
    (loading the task would generate it; a report only reads)."""
    import os

    from ..synth.dataset import is_complete
    from ..task_library.folders import SYNTH_ENV, default_synth_path

    if not task_name.startswith("biores_synth_"):
        return None
    root = os.environ.get(SYNTH_ENV) or str(default_synth_path())
    return (
        None
        if is_complete(Path(root))
        else f"images not recoverable here (no synthetic benchmark at {root}; set {SYNTH_ENV})"
    )


def attach_images(gallery: Gallery, longest: int = 256) -> Gallery:
    """Re-derive, for each flip and level, the images the task hands the model (see the module doc)."""
    prefixes = sorted({prefix for (_run, prefix) in gallery.flips})
    for prefix in prefixes:
        missing = _missing_synth(gallery.task_names[prefix])
        if missing:
            gallery.notes[prefix] = missing
            continue
        from tenacity import RetryError  # lmms-eval retries a failing download, then raises this

        try:
            task = _load_tasks([gallery.task_names[prefix]])[gallery.task_names[prefix]]
            docs = task.test_docs()
        except (BioresError, OSError, KeyError, ValueError, ImportError, RetryError) as exc:
            cause = exc.last_attempt.exception() if isinstance(exc, RetryError) else exc
            gallery.notes[prefix] = (
                f"images not recoverable here ({type(cause).__name__}: {str(cause).splitlines()[0][:160]})"
            )
            continue
        for (_run, p), flips in gallery.flips.items():
            if p != prefix:
                continue
            for flip in flips:
                note = _attach(task, docs, flip, longest)
                if note:
                    gallery.notes[prefix] = note
    return gallery


def _attach(task: Any, docs: Any, flip: Flip, longest: int) -> str | None:
    """Fill one flip's thumbnails; a note when they could not be re-derived faithfully."""
    if flip.doc_id >= len(docs):
        return f"doc {flip.doc_id} is not in the data set found here ({len(docs)} docs)"
    from ..resolution import parse_resolution

    doc, note = docs[flip.doc_id], None
    for level in flip.levels:
        try:
            shown = dict(doc, biores_resolution=parse_resolution(level.resolution))
            if level.eff_size:  # a pixel-size level resamples to the size its doc's µm/px gave
                shown.update(biores_eff_width=level.eff_size[0], biores_eff_height=level.eff_size[1])
            images = task.doc_to_visual(shown)
        except (BioresError, OSError, ValueError) as exc:
            return f"doc {flip.doc_id}: image not recoverable ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        level.thumbs = [_thumb(im, longest) for im in images]
        level.details = [_detail(im) for im in images]
        if len(images) == 1 and level.eff_size and tuple(images[0].size) != tuple(level.eff_size):
            note = (
                f"re-derived image of doc {flip.doc_id} at {level.resolution} is {images[0].width}x"
                f"{images[0].height}, the log says {level.eff_size[0]}x{level.eff_size[1]}: the data changed "
                "since the run"
            )
    return note
