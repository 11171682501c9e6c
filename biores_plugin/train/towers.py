"""Vision towers for ``biores-train``: a tiny random one by kind, or a saved pretrained folder.

As in LLaVA, ``--vision_tower`` names the tower: ``siglip`` / ``clip`` build a random tiny
one, a folder written by ``save_pretrained`` (e.g. by ``biores-pretrain-vision``) is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..errors import BioresConfigError

TOWER_KINDS = ("siglip", "clip")


def pretrained_tower_config(vision_tower: Optional[str]) -> Any:
    """The vision config of a pretrained tower folder (``--vision_tower PATH``), else ``None``."""
    from transformers import AutoConfig, CLIPVisionConfig, SiglipVisionConfig

    if vision_tower is None or vision_tower in TOWER_KINDS:
        return None
    path = Path(vision_tower)
    if not (path / "config.json").is_file():
        raise BioresConfigError(
            f"--vision_tower must be one of {', '.join(TOWER_KINDS)} or a folder with a saved vision tower "
            f"(config.json), got {vision_tower!r}"
        )
    config = AutoConfig.from_pretrained(path)
    if not isinstance(config, (SiglipVisionConfig, CLIPVisionConfig)):
        raise BioresConfigError(
            f"--vision_tower {path}: expected a SigLIP or CLIP vision tower, found {type(config).__name__}"
        )
    return config


def load_pretrained_tower(model: Any, vision_tower: str) -> None:
    """Copy a saved tower's weights into ``model``'s vision tower (every tensor must match)."""
    from transformers import AutoModel

    source = AutoModel.from_pretrained(vision_tower)
    missing, unexpected = model.model.vision_tower.load_state_dict(source.state_dict(), strict=False)
    if missing or unexpected:
        raise BioresConfigError(
            f"--vision_tower {vision_tower}: weights do not fit the tower (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]})"
        )
