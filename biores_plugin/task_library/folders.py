"""Where biores' own task folders are, found from this file's place (nothing is imported)."""

from __future__ import annotations

from pathlib import Path


def tasks_dir() -> Path:
    """biores' own task folder: ``biores_plugin/tasks`` installed, ``tasks/`` in the source tree."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "tasks"
    return installed if installed.is_dir() else package.parent / "tasks"
