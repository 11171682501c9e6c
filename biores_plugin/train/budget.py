"""What one forward holds: rows, padding and image tokens (the batch log), and the visual-token budget per batch."""

from __future__ import annotations

from typing import Any

import torch


def batch_shape(inputs: dict[str, Any], visual_tokens: torch.Tensor | None) -> dict[str, int]:
    """``rows`` and ``tokens`` of the language-model input, its ``pad_tokens`` and the batch's ``image_tokens``."""
    ids = inputs.get("input_ids")
    if ids is None:
        ids = inputs["inputs_embeds"]
    mask = inputs.get("attention_mask")
    return {
        "rows": int(ids.shape[0]),
        "tokens": int(ids.shape[0] * ids.shape[1]),
        "pad_tokens": 0 if mask is None else int((mask == 0).sum()),
        "image_tokens": 0 if visual_tokens is None else int(visual_tokens.sum()),
    }
