"""Reading a checkpoint folder without building anything, and the strict check of a load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import BioresConfigError


def folder_config(path: str | Path, flag: str = "checkpoint") -> dict[str, Any]:
    """``config.json`` of a local model folder, read as JSON (nothing is built); ``flag`` names
    where the path came from in the one-line errors (``--model_name_or_path``, ``pretrained=``)."""
    folder = Path(path)
    if not folder.is_dir():
        raise BioresConfigError(f"{flag} {folder} is not a local folder")
    file = folder / "config.json"
    if not file.is_file():
        raise BioresConfigError(f"{flag} {folder} has no config.json (not a saved model folder)")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise BioresConfigError(f"{file} is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise BioresConfigError(f"{file} has no model_type")
    return data


def check_loading_info(info: dict, where: Any) -> None:
    """One-line error when a load left any weight missing, unexpected or mismatched."""
    problems = []
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        items = sorted(str(k[0] if isinstance(k, tuple) else k) for k in (info.get(key) or []))
        if items:
            more = ", ..." if len(items) > 3 else ""
            problems.append(f"{len(items)} {key.replace('_', ' ')} ({', '.join(items[:3])}{more})")
    if problems:
        raise BioresConfigError(f"{where}: the checkpoint does not match the model: {'; '.join(problems)}")
