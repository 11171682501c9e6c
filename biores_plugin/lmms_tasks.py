"""Shared machinery of the biores lmms-eval task folders: resolution sweeps and scoring.

Every variant of a sweep is the same data set with one inference resolution. A variant's
``process_docs`` adds, without decoding pixels, the columns

``biores_resolution`` (longest side in px, ``0`` for native), ``biores_orig_width`` /
``biores_orig_height`` (the stored image) and ``biores_eff_width`` / ``biores_eff_height``
(what the model receives),

so ``doc_to_visual`` needs no arguments and every logged sample records both sizes.
Downsampling is antialiased (Pillow's Lanczos filter over the whole footprint) and never
upsamples; ``native`` hands the stored image over untouched.
"""

from __future__ import annotations

import re
import string
from typing import Any, Callable, Iterable, Sequence

from PIL import Image

from .errors import BioresConfigError
from .policy import DownsamplePolicy

#: The default inference resolutions of a sweep (longest side, px) plus native.
DEFAULT_RESOLUTIONS: tuple[int | str, ...] = (224, 448, 896, "native")

NATIVE = 0  # stored in the biores_resolution column


def parse_resolution(value: int | str) -> int:
    """``224`` / ``"224"`` -> 224, ``"native"`` -> 0; anything else is a one-line error."""
    if isinstance(value, str) and value.strip().lower() == "native":
        return NATIVE
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BioresConfigError(f"resolution must be a positive integer or 'native', got {value!r}") from None
    if number < 8:
        raise BioresConfigError(f"resolution must be at least 8 px, got {number}")
    return number


def resolution_label(resolution: int) -> str:
    return "native" if resolution == NATIVE else str(resolution)


def effective_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    if resolution == NATIVE:
        return width, height
    return DownsamplePolicy(max_side=resolution).downsample_size(width, height)


def sweep_image(image: Image.Image, resolution: int) -> Image.Image:
    """The image the model sees at ``resolution`` (RGB; downsample only, antialiased)."""
    if image.mode != "RGB":
        from .image_io import load_image

        image = load_image(image)
    size = effective_size(image.width, image.height, resolution)
    if size == image.size:
        return image
    return image.resize(size, Image.LANCZOS, reducing_gap=3.0)


def _header_sizes(column: Sequence[Any]) -> list[tuple[int, int]]:
    """Sizes of undecoded ``datasets.Image`` cells (``{"bytes", "path"}``), headers only."""
    from .image_io import image_size

    sizes = []
    for cell in column:
        if cell is None:
            sizes.append((0, 0))
            continue
        if isinstance(cell, Image.Image):
            sizes.append(cell.size)
            continue
        data = cell.get("bytes") if isinstance(cell, dict) else None
        sizes.append(image_size(data if data else cell["path"]))
    return sizes


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
        sizes = _header_sizes(raw[image_column])
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


# --------------------------------------------------------------------------- scoring

_PUNCT = str.maketrans({c: " " for c in string.punctuation})
_ARTICLES = {"a", "an", "the"}
YES = {"yes", "y", "true", "yeah", "yep", "present", "positive"}
NO = {"no", "n", "false", "nope", "absent", "negative"}


def normalize_answer(text: Any) -> str:
    """Lower-case, drop punctuation and articles, squeeze spaces (VQA-style)."""
    words = str(text or "").lower().translate(_PUNCT).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def yes_no(text: Any) -> str | None:
    """``"yes"`` / ``"no"`` if the answer starts with one, else ``None``."""
    words = normalize_answer(text).split()
    if not words:
        return None
    if words[0] in YES:
        return "yes"
    if words[0] in NO:
        return "no"
    return None


def choose_option(response: Any, options: Sequence[str], letters: bool = False) -> str | None:
    """Which option a free-text response names: a leading letter (``B``, ``(B)``, ``B.``) when
    ``letters``, else the option whose normalised text appears first in the response."""
    raw = str(response or "").strip()
    if letters:
        # "B", "(B)", "B.", "b)" name an option; a lower-case word such as "a large mass" does not
        m = re.match(r"^\(?([A-Z])[\)\.:\s]", raw + " ") or re.match(r"^\(?([a-z])[\)\.:]", raw)
        if m:
            index = ord(m.group(1).upper()) - ord("A")
            if 0 <= index < len(options):
                return options[index]
    norm = f" {normalize_answer(raw)} "
    best, best_pos = None, None
    for option in options:
        key = normalize_answer(option)
        if not key:
            continue
        pos = norm.find(f" {key} ")
        if pos >= 0 and (best_pos is None or pos < best_pos or (pos == best_pos and len(key) > len(normalize_answer(best)))):
            best, best_pos = option, pos
    return best


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def aggregate_score(results: Sequence[Any]) -> float:
    """Mean of ``score`` over per-sample dicts (or plain numbers); NaN-free for empty lists."""
    scores = [r["score"] if isinstance(r, dict) else float(r) for r in results if r is not None]
    return mean(scores) if scores else 0.0


def aggregate_where(key: str, value: Any) -> Callable[[Sequence[dict]], float]:
    """Aggregation over the samples whose ``key`` equals ``value`` (0 when there are none)."""

    def aggregate(results: Sequence[dict]) -> float:
        picked = [r["score"] for r in results if isinstance(r, dict) and r.get(key) == value]
        return mean(picked) if picked else 0.0

    aggregate.__name__ = f"aggregate_{key}_{value}"
    return aggregate


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
