"""Checked sample images for every biores task: strict decoding, one-line errors, opt-in skipping.

Images reach the model only through :func:`decode` (``biores_plugin.image_io.load_image``'s
checks, whatever ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` says). A bad image stops the run with
one line naming task, doc id and source; with ``skip_bad_images`` it is skipped and recorded.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PIL import Image, ImageOps

from ..errors import BioresImageError

__all__ = [
    "SKIP_ENV",
    "BadImageError",
    "checked",
    "decode",
    "decode_cell",
    "end_cli_run",
    "skip_enabled",
    "skipped",
    "stop_cli_runs_cleanly",
]

#: ``1`` / ``true`` / ``all`` skips bad images in every biores task; a comma list names tasks.
SKIP_ENV = "BIORES_SKIP_BAD_IMAGES"
_T = TypeVar("_T")
_log = logging.getLogger(__name__)
_SKIPPED: dict[tuple[str, int], str] = {}
_LOCK = threading.Lock()


class BadImageError(BioresImageError):
    """A sample image is unusable: names the task, the doc id and the image's source."""


def decode(data: bytes, *, exif_transpose: bool = True) -> Image.Image:
    """``data`` decoded as Pillow (and ``datasets``) decode it, after the checked loader read it whole.

    RGB files come straight from :func:`load_image`; other modes (L, P, CMYK, 16-bit, alpha)
    are then opened again in their own mode, so a task's own ``convert("RGB")`` sees what it
    would have seen upstream. ``exif_transpose`` as ``datasets.Image`` does it (on) or as a
    plain ``Image.open`` (off).
    """
    from ..image_io import is_dicom, load_image

    rgb = load_image(data, exif_transpose=exif_transpose)  # raises on truncated / corrupt input
    if is_dicom(data):  # Pillow cannot open DICOM: the rendered frame is what a task can see
        return rgb
    with Image.open(io.BytesIO(data)) as probe:
        plain_rgb = probe.mode == "RGB" and "transparency" not in probe.info
    if plain_rgb:
        return rgb
    image = Image.open(io.BytesIO(data))
    image.load()
    if exif_transpose and image.getexif().get(Image.ExifTags.Base.Orientation) is not None:
        image = ImageOps.exif_transpose(image)
    return image


def decode_cell(cell: Any, *, exif_transpose: bool = True) -> Any:
    """One ``datasets.Image(decode=False)`` cell (``{"bytes", "path"}``) as a checked image.

    A cell that is already a PIL image (a column the task decoded itself) is returned as is.
    """
    if cell is None or isinstance(cell, Image.Image):
        return cell
    if isinstance(cell, dict):
        data = cell.get("bytes")
        if not data and cell.get("path"):
            with open(cell["path"], "rb") as handle:
                data = handle.read()
        if data:
            return decode(data, exif_transpose=exif_transpose)
    raise BioresImageError(f"cannot load image <{type(cell).__name__}>: not an image cell")


def cell_source(column: str, cell: Any, index: int | None = None) -> str:
    """How an error names an image cell: its column (and list position) and its path if any."""
    where = f"column {column!r}" + ("" if index is None else f"[{index}]")
    path = cell.get("path") if isinstance(cell, dict) else None
    return f"{where} ({path})" if path else where


def skip_enabled(task: str, flag: bool = False) -> bool:
    """Whether ``task`` skips bad images: its own flag, or ``$BIORES_SKIP_BAD_IMAGES``."""
    if flag:
        return True
    value = os.environ.get(SKIP_ENV, "").strip()
    if value.lower() in ("1", "true", "yes", "all"):
        return True
    return task in {v.strip() for v in value.split(",") if v.strip()}


def checked(task: str, doc_id: Any, source: str, load: Callable[[], _T], *, skip: bool = False) -> _T | None:
    """``load()``; a bad image raises one :class:`BadImageError` line, or with skipping on
    is recorded for ``(task, doc_id)`` and gives ``None`` (callers put :func:`placeholder` there)."""
    try:
        return load()
    except BioresImageError as exc:
        reason = f"{source}: {exc}"
        if skip_enabled(task, skip):
            with _LOCK:
                _SKIPPED[(task, int(doc_id))] = reason
            _log.warning("biores: skipping %s doc %s: %s", task, doc_id, reason)
            return None
        raise BadImageError(f"bad image in task {task}, doc {doc_id}: {reason}") from None


def _in_lmms_eval_cli() -> bool:
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", "") == "lmms_eval.__main__" or os.path.basename(sys.argv[0] or "") == "lmms-eval"


def end_cli_run(message: str) -> None:
    """In the ``lmms-eval`` CLI: print ``biores: <message>`` on one stderr line and exit 2.

    Outside the CLI (``simple_evaluate`` from Python) it returns: the caller re-raises.
    """
    import sys

    if not _in_lmms_eval_cli():
        return
    from tqdm import tqdm

    tqdm.write(f"biores: {' '.join(str(message).split())}", file=sys.stderr)  # one line, past progress bars
    raise SystemExit(2)


def stop_cli_runs_cleanly() -> None:
    """In the ``lmms-eval`` CLI, a biores error ends the run with one stderr line and exit 2.

    lmms-eval prints a traceback and exits 0 for a failed run (unless ``--verbosity DEBUG``);
    this wraps ``lmms_eval.evaluator.evaluate`` once, before it runs (tasks are built first).
    Library calls (``simple_evaluate`` from Python) keep the exception.
    """
    import sys

    evaluator = sys.modules.get("lmms_eval.evaluator")
    if evaluator is None or not hasattr(evaluator, "evaluate") or not _in_lmms_eval_cli():
        return
    from ..errors import BioresError
    from ..patching import wrap

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def evaluate(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            except BioresError as exc:
                end_cli_run(str(exc))
                raise

        return evaluate

    wrap(evaluator, "evaluate", make, group="lmms_eval.cli")


def placeholder() -> Image.Image:
    """What the model gets in place of a skipped bad image (its answer is never scored): many
    models cannot take a turn without an image."""
    return Image.new("RGB", (64, 64), (128, 128, 128))


def skipped(task: str, doc_id: Any) -> str | None:
    """The reason ``(task, doc_id)`` was skipped, or ``None`` (its images were all good)."""
    with _LOCK:
        return _SKIPPED.get((task, int(doc_id)))


def skip_record(task: str, doc_id: Any, reason: str | None) -> dict[str, Any]:
    """The per-sample ``biores_skipped_images`` record (1 when the doc was skipped)."""
    return {"task": task, "doc_id": int(doc_id), "skipped": float(reason is not None), "reason": reason}


def aggregate_skipped(records: list[Any]) -> float:
    """How many docs a run skipped for bad images (the ``biores_skipped_images`` metric)."""
    return float(sum(r["skipped"] if isinstance(r, dict) else float(r) for r in records))
