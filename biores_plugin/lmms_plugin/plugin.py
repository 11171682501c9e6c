"""How biores plugs into lmms-eval 0.7.x with no extra flags.

lmms-eval loads the ``lmms_eval.models`` entry points before it builds its ``TaskManager``;
biores' entry point (:func:`manifests`) registers ``biores_llava`` and installs three
reversible hooks (group ``"lmms_eval"`` of :mod:`biores_plugin.patching`): task folders from the
``lmms_eval.tasks`` entry-point group, local data copies, one run per sweep variant; plus the
visual-token accounting of lmms-eval's own wrappers (:mod:`.accounting`). See docs/lmms_eval_plugin.md.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .. import patching
from ..errors import BioresConfigError
from ..task_library.folders import (  # noqa: F401  (re-exported: the plugin's own task folders and data)
    SYNTH_ENV,
    default_synth_path,
    task_metadata,
    tasks_dir,
)

TASK_ENTRY_POINT_GROUP = "lmms_eval.tasks"
GROUP = "lmms_eval"
#: The set generated on first use: 1024 px, so the 224/448/896 sweep really downsamples.
DEFAULT_SYNTH = {"size": 1024, "n_train": 16, "n_test": 200, "seed": 0, "progress": True}


def entry_point_task_dirs() -> list[str]:
    """Folders published under ``lmms_eval.tasks``: a module/package name or a path per entry."""
    dirs: list[str] = []
    for ep in entry_points().select(group=TASK_ENTRY_POINT_GROUP):
        target = ep.value
        try:
            if os.path.isdir(target):
                path = target
            else:
                module = ep.load()
                path = str(Path(module.__file__).resolve().parent)
        except Exception as exc:  # a broken third-party entry point must not break lmms-eval
            import logging

            logging.getLogger(__name__).warning("ignoring task entry point %s: %s", ep.name, exc)
            continue
        if path not in dirs:
            dirs.append(path)
    return dirs


def _with_plugin_paths(include_path: Any) -> list[str]:
    from ..task_authoring.wrap import shipped_dir

    paths: list[str] = []
    if include_path is not None:
        paths.extend([include_path] if isinstance(include_path, (str, os.PathLike)) else list(include_path))
    wrapped = shipped_dir()  # the shipped wrapped sweeps (SLAKE, MicroVQA), written for this lmms-eval
    for extra in [*entry_point_task_dirs(), *([str(wrapped)] if wrapped else [])]:
        if not any(os.path.abspath(str(p)) == extra for p in paths):
            paths.append(extra)  # after user paths: --include_path keeps its precedence
    return [str(p) for p in paths]


def _resolve_local_copy(task: Any, dataset_kwargs: dict | None) -> dict | None:
    """Point a biores task at local data when its settings say so; return the kwargs to use."""
    metadata = task_metadata(task.config)
    if metadata.get("biores_synth"):
        from ..synth.dataset import is_complete, missing_data_message, write_dataset

        env_value = os.environ.get(SYNTH_ENV)
        root = Path(env_value).expanduser() if env_value else default_synth_path()
        if not is_complete(root):
            if env_value:
                raise BioresConfigError(missing_data_message(root))
            import logging

            logging.getLogger(__name__).warning("biores: generating the default synthetic benchmark at %s", root)
            write_dataset(root, **DEFAULT_SYNTH)
        split = task.config.test_split or "test"
        task.DATASET_PATH = "parquet"
        task.DATASET_NAME = None
        kwargs = dict(dataset_kwargs or {})
        kwargs["data_files"] = {split: str(root / f"{split}.parquet")}
        return kwargs
    env = metadata.get("local_path_env")
    local = os.environ.get(env) if env else None
    if not local:
        return dataset_kwargs
    path = Path(local).expanduser()
    if not path.exists():
        raise BioresConfigError(f"{env}={local} does not exist (expected a local copy of {task.config.dataset_path})")
    kwargs = dict(dataset_kwargs or {})
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        kwargs["load_from_disk"] = True  # datasets.save_to_disk output
    task.DATASET_PATH = str(path.resolve())
    return kwargs


def install() -> None:
    """Install the task-path, local-data and sweep-matching hooks (idempotent; see :func:`uninstall`)."""
    from ..versions import check_version

    check_version("lmms-eval", "biores' lmms-eval hooks")  # they wrap TaskManager / ConfigurableTask internals
    from lmms_eval.api.task import ConfigurableTask
    from lmms_eval.tasks import TaskManager

    def initialize_tasks(original):
        def hook(self, include_path=None, include_defaults=True):
            return original(self, include_path=_with_plugin_paths(include_path), include_defaults=include_defaults)

        return hook

    def download(original):
        def hook(self, dataset_kwargs=None):
            if not _is_biores_task(self):
                return original(self, dataset_kwargs)  # other tasks: lmms-eval's own path, untouched
            from .data_load import load_task_data

            out = load_task_data(self, original, dataset_kwargs, _resolve_local_copy, adjust=_renamed_split)
            _name_sweep_docs(self)
            return out

        return hook

    def match_tasks(original):
        def hook(self, task_list):
            return _drop_covered_subtasks(self, original(self, task_list), task_list)

        return hook

    patching.wrap(TaskManager, "initialize_tasks", initialize_tasks, group=GROUP)
    patching.wrap(ConfigurableTask, "download", download, group=GROUP)
    patching.wrap(TaskManager, "match_tasks", match_tasks, group=GROUP)


#: data sets whose hub split was renamed: {dataset_path: (current name, older name)}
RENAMED_SPLITS = {"jmhb/microvqa": ("test", "train")}  # jmhb0/microvqa c5727fb, July 2025


def _renamed_split(task: Any) -> None:
    """A biores task over a copy saved before its split was renamed: read the old split as the new."""
    if not task_metadata(task.config).get("local_path_env"):
        return  # not a biores task: the host's own tasks load as they always did
    renamed = RENAMED_SPLITS.get(str(task.config.dataset_path))
    if renamed is None or task.config.test_split != renamed[0]:
        return
    for attr in ("dataset", "dataset_no_image"):
        splits = getattr(task, attr, None)
        if splits is not None and renamed[0] not in splits and renamed[1] in splits:
            splits[renamed[0]] = splits.pop(renamed[1])
            if attr == "dataset":
                import logging

                logging.getLogger(__name__).warning(
                    "biores: %s has no split %r; reading its %r split (the name before July 2025, same %d questions)",
                    task.config.task,
                    renamed[0],
                    renamed[1],
                    len(splits[renamed[0]]),
                )


def _name_sweep_docs(task: Any) -> None:
    """Give a biores sweep's docs a ``biores_task`` column (the task's name), so a bad image's
    one-line error and the skipped-image record can name the task."""
    name = getattr(task.config, "task", None)
    for attr in ("dataset", "dataset_no_image"):
        splits = getattr(task, attr, None)
        if not name or splits is None:
            continue
        for split in list(splits):
            docs = splits[split]
            if "biores_resolution" in docs.column_names and "biores_task" not in docs.column_names:
                splits[split] = docs.add_column("biores_task", [name] * len(docs))


def _is_biores_task(task: Any) -> bool:
    """A task biores ships or generated (its name, or the local-data keys of its metadata)."""
    metadata = task_metadata(task.config)
    name = str(getattr(task.config, "task", "") or "")
    return name.startswith("biores_") or bool(metadata.get("local_path_env") or metadata.get("biores_synth"))


def is_installed() -> bool:
    return bool(patching.patches(GROUP))


def uninstall() -> None:
    """Restore lmms-eval's original methods."""
    patching.revert(GROUP)


def _drop_covered_subtasks(manager: Any, matched: list[str], patterns: list[str]) -> list[str]:
    """``--tasks 'biores_x_*'`` matches a biores sweep group *and* its variants; lmms-eval would
    then run every variant twice. Keep the group, drop variants matched only by a wildcard."""
    index = manager.task_index
    explicit = set(patterns)
    covered: set[str] = set()
    for name in matched:
        entry = index.get(name, {})
        if name.startswith("biores_") and entry.get("type") == "group" and entry.get("yaml_path", -1) != -1:
            from lmms_eval import utils

            config = utils.load_yaml_config(entry["yaml_path"], mode="simple")
            subtasks = config.get("task", [])
            covered.update(t for t in subtasks if isinstance(t, str))
    return [name for name in matched if name not in covered or name in explicit]


def manifests() -> list[Any]:
    """The ``lmms_eval.models`` entry point: biores' models, plus the task hooks."""
    from lmms_eval.models.registry_v2 import ModelManifest

    from .. import register

    register()
    install()
    if os.environ.get("BIORES_ACCOUNTING", "1") != "0":
        from . import accounting

        accounting.install()
    return [
        ModelManifest(
            model_id="biores_llava",
            simple_class_path="biores_plugin.lmms_plugin.biores_llava.BioresLlava",
            chat_class_path="biores_plugin.lmms_plugin.biores_llava.BioresLlavaChat",
        )
    ]
