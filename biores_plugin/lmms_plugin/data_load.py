"""Loading a biores task's data inside lmms-eval: biores' errors are final, a local copy's faults named.

lmms-eval wraps ``ConfigurableTask.download`` in tenacity retries (5 tries, 2 s apart) and, in the
CLI, prints the ``RetryError`` traceback and exits 0. For biores tasks (only those) the plugin's
``download`` hook calls :func:`load_task_data`: a :class:`~biores_plugin.errors.BioresError` is not
retried, a local copy is read once (no network to wait for), a local copy that does not load or
lacks the task's split becomes one :class:`~biores_plugin.errors.BioresConfigError` naming the
variable, the file and the cause, and in the CLI the run ends with that one line and exit 2
(:func:`.images.end_cli_run`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BioresConfigError, BioresError
from ..task_library.images import end_cli_run

__all__ = ["load_task_data", "local_copy"]

#: Data files a local copy is checked for when it does not load (the culprit is named).
_DATA_SUFFIXES = (".parquet", ".arrow", ".json")
_MAX_JSON_BYTES = 256 << 20


def local_copy(task: Any) -> tuple[str, Path] | None:
    """``(variable, folder)`` of the local copy a biores task reads, or ``None`` (the hub)."""
    from ..task_library.folders import SYNTH_ENV, default_synth_path, task_metadata

    metadata = task_metadata(task.config)
    if metadata.get("biores_synth"):
        value = os.environ.get(SYNTH_ENV)
        return SYNTH_ENV, Path(value).expanduser() if value else default_synth_path()
    env = metadata.get("local_path_env")
    value = os.environ.get(env, "").strip() if env else ""
    return (env, Path(value).expanduser()) if value else None


def load_task_data(
    task: Any,
    original: Callable[..., Any],
    dataset_kwargs: Any,
    resolve: Callable[[Any, Any], Any],
    adjust: Callable[[Any], None] | None = None,
) -> Any:
    """lmms-eval's ``download`` for a biores task (``resolve`` points it at local data; ``adjust``
    fixes the loaded splits, e.g. a split renamed upstream, before the task's split is checked)."""
    name = getattr(task.config, "task", None) or "?"
    try:
        kwargs = resolve(task, dataset_kwargs)
        local = local_copy(task)
        out = _download(task, original, kwargs, local)
        if adjust is not None:
            adjust(task)
        _check_split(task, local)
        return out
    except BioresError as exc:
        end_cli_run(f"task {name}: {exc}")  # the CLI: one line, exit 2
        raise


def _download(task: Any, original: Callable[..., Any], kwargs: Any, local: tuple[str, Path] | None) -> Any:
    load = original
    retry_with = getattr(original, "retry_with", None)  # lmms-eval's tenacity wrapper
    if retry_with is not None:
        from tenacity import retry_if_not_exception_type, stop_after_attempt

        changes: dict[str, Any] = {"retry": retry_if_not_exception_type(BioresError), "reraise": True}
        if local is not None:
            changes["stop"] = stop_after_attempt(1)  # a local file does not get better by waiting
        load = retry_with(**changes)
    if local is None:
        return load(task, kwargs)
    from datasets.exceptions import DatasetsError

    try:
        return load(task, kwargs)
    except BioresError:
        raise
    except (DatasetsError, OSError, ValueError, KeyError) as exc:  # what datasets/pyarrow raise for bad files
        raise BioresConfigError(unreadable_message(local, exc)) from exc


def _check_split(task: Any, local: tuple[str, Path] | None) -> None:
    split = task.config.test_split or task.config.validation_split
    dataset = getattr(task, "dataset", None)
    if not split or dataset is None or not hasattr(dataset, "keys") or split in dataset:
        return
    where = f"{local[0]}={local[1]}" if local else f"the data set {task.DATASET_PATH}"
    found = ", ".join(sorted(dataset.keys())) or "none"
    raise BioresConfigError(f"{where} has no split {split!r} (splits found: {found}); the task evaluates {split!r}")


def unreadable_message(local: tuple[str, Path], exc: BaseException) -> str:
    """One line for a local copy that does not load: the first data file that does not parse, or the cause."""
    env, root = local
    bad = first_bad_file(root)
    if bad is not None:
        path, error = bad
        return f"{env}={root}: {path.relative_to(root)} is not a readable {path.suffix[1:]} file ({_brief(error)})"
    return f"{env}={root}: the local copy does not load ({_brief(_root_cause(exc))})"


def first_bad_file(root: Path) -> tuple[Path, BaseException] | None:
    """The first data file under ``root`` (sorted) that its reader rejects, with the reader's error."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix in _DATA_SUFFIXES:
                error = _parse_error(path)
                if error is not None:
                    return path, error
    return None


def _parse_error(path: Path) -> BaseException | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            pq.read_metadata(path)
        elif path.suffix == ".arrow":
            with pa.memory_map(str(path)) as source:
                pa.ipc.open_stream(source).schema  # noqa: B018 - reading the schema is the check
        elif path.stat().st_size <= _MAX_JSON_BYTES:
            json.loads(path.read_bytes())
    except (pa.ArrowException, OSError, ValueError) as exc:  # ArrowInvalid, JSONDecodeError, unreadable file
        return exc
    return None


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def _brief(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
