"""The runtime side of a wrapped sweep: one :class:`Variant` per level of a wrapped task.

Each wraps the task's own functions, loaded from its yaml: ``process_docs`` (then biores' size
columns, image columns left undecoded), ``doc_to_visual`` / ``doc_to_messages`` (images decoded
by the checked loader, then capped) and ``process_results`` (plus the ``biores`` record).
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import BioresConfigError
from ..resolution import NATIVE, downsample, effective_size, resolution_label
from . import images as checked_images

SPEC_FILE = "_biores_sweep.json"
#: Score fields a task's per-sample record may use, in the order they are looked for.
SCORE_KEYS = ("score", "is_correct", "correct", "acc", "accuracy", "exact_match", "hit")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Modes Pillow resizes with Lanczos; others are converted to RGB before the cap.
_RESIZABLE = {"L", "LA", "RGB", "RGBA", "I", "F", "RGBX", "RGBa", "La"}


@dataclass(frozen=True)
class Adapter:
    """Where a task's own reader gets images from outside its table (SLAKE: ``imgs.zip``).

    biores reads the same member through its checked archive and hands it to the task in the
    doc field the task checks first (``inject``), so the task's code path stays its own.
    """

    env: str
    repo_id: str
    zips: tuple[str, ...]
    folders: tuple[str, ...]
    field: str
    inject: str
    exif_transpose: bool = False

    def archive(self) -> Any:
        from .archive import image_archive

        return image_archive(
            self.env,
            self.repo_id,
            list(self.zips),
            list(self.folders),
            f"images ({', '.join(self.zips)})",
            bare_first=True,
        )


#: Known data sets: the local-copy variable and, where the task reads images itself, the adapter.
ADAPTERS: dict[str, Adapter] = {
    "BoKelvin/SLAKE": Adapter("BIORES_SLAKE_PATH", "BoKelvin/SLAKE", ("imgs.zip",), ("imgs",), "img_name", "image"),
}
LOCAL_ENVS = {"BoKelvin/SLAKE": "BIORES_SLAKE_PATH", "jmhb/microvqa": "BIORES_MICROVQA_PATH"}


def _is_cell(value: Any) -> bool:
    """An undecoded ``datasets.Image`` cell: ``{"bytes": ..., "path": ...}``."""
    return isinstance(value, dict) and set(value) == {"bytes", "path"}


def _largest(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    return max(sizes, key=lambda s: s[0] * s[1], default=(0, 0))


def resize_visual(image: Image.Image, level: int) -> Image.Image:
    """``image`` capped at ``level`` in its own mode when Pillow can resample it."""
    if level == NATIVE:
        return image
    if image.mode not in _RESIZABLE:
        image = image.convert("RGB")
    return downsample(image, level)


@dataclass
class Variant:
    """One level of one wrapped task; its methods are the variant yaml's ``!function`` targets."""

    name: str
    level: int
    spec: dict[str, Any]
    original: dict[str, Any] = field(repr=False)

    # -- helpers

    @property
    def adapter(self) -> Adapter | None:
        return ADAPTERS.get(self.spec.get("adapter") or "")

    @property
    def skip(self) -> bool:
        return bool(self.spec.get("skip_bad_images"))

    def _fn(self, key: str) -> Any:
        return self.original.get(key)

    def prepare(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` with its images decoded by the checked loader; a bad one (with skipping on)
        becomes :func:`~.images.placeholder` and the doc is recorded as skipped."""
        doc_id = doc.get("biores_doc_id", -1)
        out = dict(doc)
        for column, cells in doc.items():
            if _is_cell(cells):
                out[column] = self._decode(doc_id, checked_images.cell_source(column, cells), cells)
            elif isinstance(cells, list) and cells and all(c is None or _is_cell(c) for c in cells):
                out[column] = [
                    self._decode(doc_id, checked_images.cell_source(column, c, k), c) for k, c in enumerate(cells)
                ]
        adapter = self.adapter
        if adapter is not None and not isinstance(out.get(adapter.inject), Image.Image):
            member = str(out[adapter.field])
            archive = adapter.archive()
            image = checked_images.checked(
                self.name,
                doc_id,
                f"{archive.describe()} member {member!r}",
                lambda: checked_images.decode(archive.read(member), exif_transpose=adapter.exif_transpose),
                skip=self.skip,
            )
            out[adapter.inject] = checked_images.placeholder() if image is None else image
        return out

    def _decode(self, doc_id: Any, source: str, cell: Any) -> Any:
        if cell is None:
            return None
        image = checked_images.checked(
            self.name, doc_id, source, lambda: checked_images.decode_cell(cell), skip=self.skip
        )
        return checked_images.placeholder() if image is None else image

    def sweep(self, visual: Any, doc: dict[str, Any]) -> Any:
        """One visual the task produced, at this variant's level (native: untouched)."""
        if isinstance(visual, Image.Image):
            return resize_visual(visual, self.level)
        if isinstance(visual, (str, os.PathLike)) and str(visual).lower().endswith(_IMAGE_EXTS):
            source = f"file {os.fspath(visual)!r}"
            image = checked_images.checked(
                self.name,
                doc.get("biores_doc_id", -1),
                source,
                lambda: checked_images.decode(Path(visual).read_bytes()),
                skip=self.skip,
            )
            if image is None:
                return checked_images.placeholder()
            return visual if self.level == NATIVE else resize_visual(image, self.level)
        if self.level == NATIVE:
            return visual
        raise BioresConfigError(
            f"{self.name}: the task gives a {type(visual).__name__} visual; biores sweeps resize images only"
        )

    # -- the yaml's functions

    def process_docs(self, dataset: Any) -> Any:
        from . import images
        from .sweep import add_resolution_columns, cell_size, undecoded

        images.stop_cli_runs_cleanly()
        original = self._fn("process_docs")
        if callable(original):
            dataset = original(dataset)
        dataset, image_columns = undecoded(dataset)
        per_doc: list[list[tuple[int, int]]] = [[] for _ in range(len(dataset))]
        for column in image_columns:
            for row, cells in enumerate(dataset[column]):
                for cell in cells if isinstance(cells, list) else [cells]:
                    if cell is not None:
                        per_doc[row].append(cell_size(cell))
        adapter = self.adapter
        if adapter is not None and adapter.field in dataset.column_names:
            for row, size in enumerate(adapter.archive().sizes([str(n) for n in dataset[adapter.field]])):
                per_doc[row].append(size)
        sizes = [_largest(s) for s in per_doc]
        return add_resolution_columns(
            dataset, self.level, image_column=None, sizes=sizes, extra={"biores_n_images": [len(s) for s in per_doc]}
        )

    def visual_function(self) -> Callable[..., list[Any]]:
        original = self._fn("doc_to_visual")

        def visuals(doc: dict[str, Any], *args: Any) -> list[Any]:
            prepared = self.prepare(doc)
            if isinstance(original, str):
                produced = [prepared[original]]
            else:
                produced = original(prepared, *args) or []
            return [self.sweep(v, doc) for v in produced]

        if callable(original) and len(inspect.signature(original).parameters) == 2:

            def doc_to_visual(doc, lmms_eval_specific_kwargs=None):  # noqa: ANN001 - lmms-eval's arity check
                return visuals(doc, lmms_eval_specific_kwargs)
        else:

            def doc_to_visual(doc):  # noqa: ANN001
                return visuals(doc)

        return doc_to_visual

    def messages_function(self) -> Callable[..., Any]:
        original = self._fn("doc_to_messages")

        def doc_to_messages(doc, **kwargs):  # noqa: ANN001 - lmms-eval passes the kwargs the task's accepts
            messages = original(self.prepare(doc), **_accepted(original, kwargs))
            for message in messages:
                content = message.get("content") if isinstance(message, dict) else None
                for part in content if isinstance(content, list) else []:
                    if isinstance(part, dict) and part.get("type") == "image":
                        key = "url" if part.get("url") is not None else "image"
                        part[key] = self.sweep(part.get(key), doc)
            return messages

        doc_to_messages.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]
        return doc_to_messages

    def process_results(self, doc: dict[str, Any], results: list[Any], **kwargs: Any) -> dict[str, Any]:
        doc_id = int(doc.get("biores_doc_id", -1))
        reason = checked_images.skipped(self.name, doc_id)
        record = self.record(doc, reason)
        skip = checked_images.skip_record(self.name, doc_id, reason)
        if reason is not None:  # no score from a broken image: the task's metrics get no entry
            return {"biores": record, "biores_skipped_images": skip}
        out = dict(self._fn("process_results")(doc, results, **kwargs))
        record["score"] = per_sample_score(out.get(self.spec.get("primary_metric")))
        from .protocols import extra_results

        out.update(extra_results(self.spec.get("extras"), doc, results))
        return {**out, "biores": record, "biores_skipped_images": skip}

    def record(self, doc: dict[str, Any], reason: str | None) -> dict[str, Any]:
        orig = [int(doc.get("biores_orig_width", 0)), int(doc.get("biores_orig_height", 0))]
        return {
            "task": self.name,
            "source_task": self.spec["source_task"],
            "doc_id": int(doc.get("biores_doc_id", -1)),
            "resolution": resolution_label(self.level),
            "orig_size": orig,
            "eff_size": list(effective_size(*orig, self.level)) if all(orig) else [0, 0],
            "n_images": int(doc.get("biores_n_images", 0)),
            "score": None,
            "skipped": reason,
        }

    def aggregation(self, metric: str) -> Callable[..., Any]:
        from .protocols import extra_aggregation

        if metric == "biores_skipped_images":
            return checked_images.aggregate_skipped
        extra = extra_aggregation(metric)
        if extra is not None:
            return extra
        for entry in self._fn("metric_list") or []:
            if entry.get("metric") == metric and callable(entry.get("aggregation")):
                return entry["aggregation"]
        raise BioresConfigError(f"{self.name}: the wrapped task has no aggregation function for metric {metric!r}")


def _accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def per_sample_score(value: Any) -> float | None:
    """A per-sample metric value as a number: plain numbers and bools as they are, a record by
    its first :data:`SCORE_KEYS` field; ``None`` when there is none."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        for key in SCORE_KEYS:
            if isinstance(value.get(key), (bool, int, float)):
                return float(value[key])
    return None


# --------------------------------------------------------------------------- folder -> functions

_LOCK = threading.Lock()
_VARIANTS: dict[tuple[str, str], Variant] = {}


@lru_cache(maxsize=32)
def _original(yaml_path: str) -> dict[str, Any]:
    from lmms_eval import utils

    return utils.load_yaml_config(yaml_path, mode="full")


def load_spec(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise BioresConfigError(
            f"{folder} is not a biores sweep folder (no {SPEC_FILE}); write one with `biores sweep`"
        )
    return json.loads(path.read_text())


def variant(folder: str | Path, name: str) -> Variant:
    """The (cached) :class:`Variant` ``name`` of the sweep folder ``folder``."""
    key = (str(Path(folder).resolve()), name)
    with _LOCK:
        if key not in _VARIANTS:
            spec = load_spec(folder)
            if name not in spec["variants"]:
                raise BioresConfigError(
                    f"{name!r} is not a variant of the sweep in {folder} ({', '.join(spec['variants'])})"
                )
            _VARIANTS[key] = Variant(name, int(spec["variants"][name]), spec, _original(spec["yaml"]))
        return _VARIANTS[key]


def folder_getattr(module_file: str) -> Callable[[str], Any]:
    """The ``__getattr__`` of a sweep folder's ``biores_wrap.py``: ``<variant>__<hook>[__<metric>]``."""
    folder = Path(module_file).resolve().parent

    def module_getattr(attr: str) -> Any:
        name, sep, hook = attr.partition("__")
        if not sep or name.startswith("_"):
            raise AttributeError(attr)
        v = variant(folder, name)
        hook, _, metric = hook.partition("__")
        if hook == "process_docs":
            return v.process_docs
        if hook == "doc_to_visual":
            return v.visual_function()
        if hook == "doc_to_messages":
            return v.messages_function()
        if hook == "process_results":
            return v.process_results
        if hook == "aggregate" and metric:
            return v.aggregation(metric)
        raise AttributeError(attr)

    return module_getattr
