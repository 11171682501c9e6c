"""Where biores' own task folders and the synthetic benchmark's data are (nothing is imported)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SYNTH_ENV = "BIORES_SYNTH_PATH"


def tasks_dir() -> Path:
    """biores' own task folder: ``biores_plugin/tasks`` installed, ``tasks/`` in the source tree."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "tasks"
    return installed if installed.is_dir() else package.parent / "tasks"


def default_synth_path() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "biores" / "synth" / "default"


def task_metadata(config: Any) -> dict:
    """A task's ``metadata`` as one dict (lmms-eval tasks also write it as a list of dicts)."""
    metadata = getattr(config, "metadata", None) or {}
    if isinstance(metadata, list):
        merged: dict = {}
        for item in metadata:
            if isinstance(item, dict):
                merged.update(item)
        return merged
    return metadata if isinstance(metadata, dict) else {}
