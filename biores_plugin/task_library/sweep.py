"""Resolution sweeps of lmms-eval tasks: the same docs at one inference level per variant.

A variant's ``process_docs`` adds, from image headers only, ``biores_resolution`` (the level,
0 = native), ``biores_doc_id``, ``biores_orig_width/height`` (stored image) and
``biores_eff_width/height`` (what the model receives), and leaves image columns undecoded:
:func:`doc_images` decodes them with the checked loader (``images.py``) and downsamples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from PIL import Image

from ..errors import BioresConfigError
from ..resolution import NATIVE, downsample, effective_size, parse_resolution, resize_exact, resolution_label
from ..resolution.levels import micron_size


def image_feature(feature: Any) -> Any:
    """``feature`` with its images undecoded (``Image`` or a list of them), else ``None``."""
    from datasets import Image as HFImage
    from datasets import List

    if isinstance(feature, HFImage):
        return HFImage(decode=False)
    if isinstance(feature, List) and isinstance(feature.feature, HFImage):
        return List(HFImage(decode=False), length=feature.length)
    return None


def undecoded(dataset: Any) -> tuple[Any, list[str]]:
    """``dataset`` with every image column undecoded (cells stay ``{"bytes", "path"}``), and those columns."""
    columns = [c for c in dataset.column_names if image_feature(dataset.features[c]) is not None]
    for column in columns:
        dataset = dataset.cast_column(column, image_feature(dataset.features[column]))
    return dataset, columns


def sweep_image(image: Image.Image, resolution: int, size: tuple[int, int] | None = None) -> Image.Image:
    """The image the model sees at ``resolution`` (RGB; downsample only, antialiased); a pixel-size
    level (< 0) resamples to the ``size`` its doc's µm/px gave (``biores_eff_width/height``)."""
    from ..image_io import load_image

    image = load_image(image, copy=False)
    if resolution < 0 and size is not None and all(size):
        return resize_exact(image, size)
    return downsample(image, resolution)


def cell_size(cell: Any) -> tuple[int, int]:
    """The size of one undecoded ``datasets.Image`` cell (``{"bytes", "path"}``), header only."""
    from ..image_io import image_size

    if cell is None:
        return (0, 0)
    if isinstance(cell, Image.Image):
        return cell.size
    data = cell.get("bytes") if isinstance(cell, dict) else None
    return image_size(data if data else cell["path"])


def add_resolution_columns(
    dataset: Any,
    resolution: int,
    *,
    image_column: str | None = "image",
    sizes: Sequence[tuple[int, int]] | None = None,
    extra: dict[str, list[Any]] | None = None,
    mpp_column: str | None = None,
) -> Any:
    """Add the ``biores_*`` columns to a ``datasets.Dataset`` (no pixel decoding); its image
    columns come back undecoded, for :func:`doc_images`' checked decoding. A pixel-size level
    needs ``mpp_column`` (µm per pixel of each image; a row without one stays as stored)."""
    dataset, _ = undecoded(dataset)
    if sizes is None:
        if image_column is None or image_column not in dataset.column_names:
            raise BioresConfigError(f"dataset has no image column {image_column!r}; pass sizes=")
        sizes = [cell_size(cell) for cell in dataset[image_column]]
    if resolution < 0:
        if mpp_column is None or mpp_column not in dataset.column_names:
            raise BioresConfigError(
                f"resolution {resolution_label(resolution)} is a pixel size, and this data set has no "
                f"{mpp_column or 'µm-per-pixel'} column; use longest sides in pixels"
            )
        mpps = [None if v is None else float(v) for v in dataset[mpp_column]]
        eff = [micron_size(w, h, resolution, m) if w and h else (0, 0) for (w, h), m in zip(sizes, mpps)]
    else:
        eff = [effective_size(w, h, resolution) if w and h else (0, 0) for w, h in sizes]
    columns = {
        "biores_resolution": [resolution] * len(dataset),
        "biores_doc_id": list(range(len(dataset))),
        "biores_orig_width": [w for w, _ in sizes],
        "biores_orig_height": [h for _, h in sizes],
        "biores_eff_width": [w for w, _ in eff],
        "biores_eff_height": [h for _, h in eff],
        **(extra or {}),
    }
    for name, values in columns.items():
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
        dataset = dataset.add_column(name, values)
    return dataset


def _task(doc: dict[str, Any]) -> str:
    return str(doc.get("biores_task") or "biores task")


def doc_images(doc: dict[str, Any], column: str = "image") -> list[Image.Image]:
    """The doc's images (one cell or a list) through the checked loader, at the doc's level.

    A bad image raises one line naming task, doc and source; with skipping on
    (``$BIORES_SKIP_BAD_IMAGES``) the doc is recorded, the model gets a placeholder and the
    doc no score.
    """
    from . import images

    cells = doc[column]
    cells = cells if isinstance(cells, list) else [cells]
    out = []
    for k, cell in enumerate(cells):
        if cell is None:
            continue
        source = images.cell_source(column, cell, k if len(cells) > 1 else None)
        image = images.checked(_task(doc), doc.get("biores_doc_id", -1), source, lambda c=cell: _load_cell(c))
        size = (int(doc.get("biores_eff_width") or 0), int(doc.get("biores_eff_height") or 0))
        out.append(sweep_image(images.placeholder() if image is None else image, int(doc["biores_resolution"]), size))
    return out


def _load_cell(cell: Any) -> Image.Image:
    from ..image_io import load_image

    if isinstance(cell, Image.Image):
        return load_image(cell)
    data = cell.get("bytes") if isinstance(cell, dict) else None
    return load_image(data if data else cell["path"])


def archive_images(doc: dict[str, Any], archive: Any, member: Any) -> list[Image.Image]:
    """:func:`doc_images` for an image an archive holds (SLAKE's zip, PMC-VQA's figures)."""
    from . import images

    source = f"{archive.describe()} member {str(member)!r}"
    image = images.checked(_task(doc), doc.get("biores_doc_id", -1), source, lambda: archive.open(member))
    return [sweep_image(images.placeholder() if image is None else image, int(doc["biores_resolution"]))]


def skipped_results(doc: dict[str, Any], results: dict[str, Any] | None = None) -> dict[str, Any]:
    """``process_results`` of a biores task: ``results`` (its metrics) plus the skip record, or
    only the skip record when the doc's image was skipped as bad (no score from it)."""
    from . import images

    task, doc_id = _task(doc), doc.get("biores_doc_id", -1)
    reason = images.skipped(task, doc_id)
    record = images.skip_record(task, doc_id, reason)
    if reason is not None or results is None:
        return {"biores_skipped_images": record}
    return {**results, "biores_skipped_images": record}


def sweep_functions(
    resolutions: Iterable[int | str],
    prepare: Callable[[Any], Any] | None = None,
    *,
    image_column: str | None = "image",
    sizes_fn: Callable[[Any], Sequence[tuple[int, int]]] | None = None,
    mpp_column: str | None = None,
) -> dict[str, Callable[[Any], Any]]:
    """``process_docs_<label>`` functions for a task folder's ``utils.py``.

    ``prepare(dataset) -> dataset`` maps a data set's own schema first (filtering, ids);
    ``sizes_fn(dataset)`` gives image sizes when the images are not an ``Image`` column.
    """

    def make(resolution: int) -> Callable[[Any], Any]:
        def process_docs(dataset: Any) -> Any:
            from . import images

            images.stop_cli_runs_cleanly()
            if prepare is not None:
                dataset = prepare(dataset)
            sizes = sizes_fn(dataset) if sizes_fn is not None else None
            return add_resolution_columns(
                dataset, resolution, image_column=image_column, sizes=sizes, mpp_column=mpp_column
            )

        process_docs.__name__ = f"process_docs_{resolution_label(resolution)}"
        return process_docs

    return {f"process_docs_{resolution_label(r)}": make(r) for r in map(parse_resolution, resolutions)}


def size_record(doc: dict[str, Any]) -> dict[str, Any]:
    """The per-sample size fields every biores metric carries into the logs."""
    return {
        "resolution": resolution_label(int(doc.get("biores_resolution", NATIVE))),
        "orig_size": [int(doc.get("biores_orig_width", 0)), int(doc.get("biores_orig_height", 0))],
        "eff_size": [int(doc.get("biores_eff_width", 0)), int(doc.get("biores_eff_height", 0))],
    }


def prompt_text(question: Any, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """``pre_prompt + question + post_prompt`` (the lmms-eval convention)."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{str(question).strip()}{kwargs.get('post_prompt', '')}"


def chat_messages(
    images: Image.Image | Sequence[Image.Image], text: str, *, text_first: bool = False
) -> list[dict[str, Any]]:
    """lmms-eval's chat format: one user turn with the image(s), then the text (or text first)."""
    parts = [{"type": "image", "url": im} for im in ([images] if isinstance(images, Image.Image) else images)]
    text_part = [{"type": "text", "text": text}]
    return [{"role": "user", "content": text_part + parts if text_first else parts + text_part}]


_PROCESS_DOCS = re.compile(r"^process_docs_(native|\d+|\d+(?:p\d+)?um)$")


def sweep_getattr(
    prepare: Callable[[Any], Any] | None = None,
    *,
    image_column: str | None = "image",
    sizes_fn: Callable[[Any], Sequence[tuple[int, int]]] | None = None,
    mpp_column: str | None = None,
) -> Callable[[str], Callable[[Any], Any]]:
    """A module ``__getattr__`` that serves ``process_docs_<N>`` / ``process_docs_native``.

    A task folder's ``utils.py`` assigns it to ``__getattr__`` so any sweep resolution (the
    shipped ones and those ``biores tasks`` writes) resolves without listing them.
    """

    def module_getattr(name: str) -> Callable[[Any], Any]:
        m = _PROCESS_DOCS.match(name)
        if not m:
            raise AttributeError(name)
        functions = sweep_functions(
            [m.group(1)], prepare, image_column=image_column, sizes_fn=sizes_fn, mpp_column=mpp_column
        )
        return next(iter(functions.values()))

    return module_getattr
