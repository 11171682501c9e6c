"""Resolution sweeps of lmms-eval tasks: the same docs at one inference level per variant.

A variant's ``process_docs`` adds, from image headers only, ``biores_resolution`` (the level,
0 = native), ``biores_orig_width/height`` (stored image) and ``biores_eff_width/height`` (what
the model receives), so every logged sample records both sizes; ``sweep_image`` downsamples.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Sequence

from PIL import Image

from ..errors import BioresConfigError
from ..resolution import NATIVE, downsample, effective_size, parse_resolution, resolution_label


def sweep_image(image: Image.Image, resolution: int) -> Image.Image:
    """The image the model sees at ``resolution`` (RGB; downsample only, antialiased)."""
    if image.mode != "RGB":
        from ..image_io import load_image

        image = load_image(image)
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
) -> Any:
    """Add the ``biores_*`` columns to a ``datasets.Dataset`` (no pixel decoding)."""
    from datasets import Image as HFImage

    if sizes is None:
        if image_column is None or image_column not in dataset.column_names:
            raise BioresConfigError(f"dataset has no image column {image_column!r}; pass sizes=")
        feature = dataset.features[image_column]
        raw = dataset.cast_column(image_column, HFImage(decode=False)) if isinstance(feature, HFImage) else dataset
        sizes = [cell_size(cell) for cell in raw[image_column]]
    eff = [effective_size(w, h, resolution) if w and h else (0, 0) for w, h in sizes]
    columns = {
        "biores_resolution": [resolution] * len(dataset),
        "biores_orig_width": [w for w, _ in sizes],
        "biores_orig_height": [h for _, h in sizes],
        "biores_eff_width": [w for w, _ in eff],
        "biores_eff_height": [h for _, h in eff],
    }
    for name, values in columns.items():
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
        dataset = dataset.add_column(name, values)
    return dataset


def sweep_functions(
    resolutions: Iterable[int | str],
    prepare: Callable[[Any], Any] | None = None,
    *,
    image_column: str | None = "image",
    sizes_fn: Callable[[Any], Sequence[tuple[int, int]]] | None = None,
) -> dict[str, Callable[[Any], Any]]:
    """``process_docs_<label>`` functions for a task folder's ``utils.py``.

    ``prepare(dataset) -> dataset`` maps a data set's own schema first (filtering, ids);
    ``sizes_fn(dataset)`` gives image sizes when the images are not an ``Image`` column.
    """

    def make(resolution: int) -> Callable[[Any], Any]:
        def process_docs(dataset: Any) -> Any:
            if prepare is not None:
                dataset = prepare(dataset)
            sizes = sizes_fn(dataset) if sizes_fn is not None else None
            return add_resolution_columns(dataset, resolution, image_column=image_column, sizes=sizes)

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


def chat_messages(image: Image.Image, text: str) -> list[dict[str, Any]]:
    """lmms-eval's chat format: one user turn with the image, then the text."""
    return [{"role": "user", "content": [{"type": "image", "url": image}, {"type": "text", "text": text}]}]


_PROCESS_DOCS = re.compile(r"^process_docs_(native|\d+)$")


def sweep_getattr(
    prepare: Callable[[Any], Any] | None = None,
    *,
    image_column: str | None = "image",
    sizes_fn: Callable[[Any], Sequence[tuple[int, int]]] | None = None,
) -> Callable[[str], Callable[[Any], Any]]:
    """A module ``__getattr__`` that serves ``process_docs_<N>`` / ``process_docs_native``.

    A task folder's ``utils.py`` assigns it to ``__getattr__`` so any sweep resolution (the
    shipped ones and those ``biores tasks`` writes) resolves without listing them.
    """

    def module_getattr(name: str) -> Callable[[Any], Any]:
        m = _PROCESS_DOCS.match(name)
        if not m:
            raise AttributeError(name)
        return next(iter(sweep_functions([m.group(1)], prepare, image_column=image_column, sizes_fn=sizes_fn).values()))

    return module_getattr
