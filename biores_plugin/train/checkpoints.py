"""``biores-train``'s checkpoints: the newest complete one, resuming from it (weights under either key layout,
the loss so far), and whether it already finished the run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import torch

from ..models import check_loading_info

#: the running loss sum a checkpoint carries, so a resumed run reports the whole run's mean loss
LOSS_FILE = "biores_loss.json"


def last_complete_checkpoint(output_dir: str | Path) -> Optional[str]:
    """The newest ``checkpoint-N`` whose save finished.

    transformers writes ``trainer_state.json`` last, and not atomically; a process killed while
    saving leaves a folder without it (or with a torn one), which ``get_last_checkpoint`` would
    pick and then fail to load. Such folders are skipped.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    for _, child in sorted(found, reverse=True):
        try:
            json.loads((child / "trainer_state.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        return str(child)
    return None


def _resume_target(value: Optional[str], output_dir: str) -> Any:
    if value is None:
        return None
    if str(value).lower() in ("last", "latest", "true", "auto"):
        return last_complete_checkpoint(output_dir)
    return value


def _finished(checkpoint: str, max_steps: int) -> bool:
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return max_steps > 0 and int(state.get("global_step", 0)) >= max_steps


#: saved (``save_pretrained``) name prefix -> the live module's, for LLaVA and Qwen-VL checkpoints
_SAVED_PREFIXES = (
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
    ("vision_tower.", "model.vision_tower."),
    ("visual.", "model.visual."),
    ("model.", "model.language_model."),
)


def load_checkpoint_weights(model: torch.nn.Module, path: Path) -> None:
    """A checkpoint's weights into ``model`` under either key layout; anything missing
    (other than tied weights) or unexpected is a one-line error, never a random module."""
    from safetensors.torch import load_file

    own = model.state_dict()
    state = {}
    for key, value in load_file(str(path)).items():
        renamed = (
            new + key[len(old) :]
            for old, new in _SAVED_PREFIXES
            if key.startswith(old) and new + key[len(old) :] in own
        )
        state[key if key in own else next(renamed, key)] = value
    result = model.load_state_dict(state, strict=False)
    loaded = {own[k].data_ptr() for k in state if k in own}
    missing = [k for k in result.missing_keys if own[k].data_ptr() not in loaded]  # tied weights come with their twin
    check_loading_info(
        {"missing_keys": missing, "unexpected_keys": result.unexpected_keys}, f"resume from {path.parent}"
    )


def _resume_prior_loss(resume: Optional[str]) -> tuple[float, int]:
    """(summed step losses, steps) before ``resume``: its loss file, else its logged losses."""
    if not resume:
        return 0.0, 0
    folder = Path(resume)
    if (folder / LOSS_FILE).is_file():
        data = json.loads((folder / LOSS_FILE).read_text())
        return float(data["loss_sum"]), int(data["steps"])
    state = json.loads((folder / "trainer_state.json").read_text())
    logged = [h for h in state.get("log_history", []) if "loss" in h]
    total, last = 0.0, 0
    for entry in logged:  # each logged loss averages the steps since the previous log
        total += float(entry["loss"]) * (int(entry["step"]) - last)
        last = int(entry["step"])
    return total, last
