"""What a sample's images cost, read from a processor's output: visual tokens and the pixel size
each image reached the vision tower at. Shared by the ``biores_llava`` model (through the
processors here) and the accounting hooks on lmms-eval's own wrappers (lmms_plugin/accounting.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple


class Encoded(NamedTuple):
    """What every biores processor's ``encode`` returns: the model's inputs, the visual tokens
    of each sample and, per sample, the ``(width, height)`` each image reached the tower at."""

    inputs: dict[str, Any]
    visual_tokens: list[int]
    sizes: list[list[tuple[int, int]]]


def per_sample(per_image: Sequence[Any], images: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Split a flat per-image list into one list per sample (``images`` gives the counts)."""
    out, cursor = [], 0
    for sample in images:
        out.append(list(per_image[cursor : cursor + len(sample)]))
        cursor += len(sample)
    return out


def consumed(processor: Any, inputs: Any) -> list[tuple[int, list[tuple[int, int]]]]:
    """Per row of a processor output: (visual tokens in ``input_ids``, pixel sizes the tower got)."""
    ids = inputs.get("input_ids") if hasattr(inputs, "get") else None
    if ids is None:
        return []
    image_id = getattr(processor, "image_token_id", None)
    if image_id is None:
        tok = getattr(processor, "tokenizer", None)
        image_id = tok.convert_tokens_to_ids(getattr(processor, "image_token", "<image>")) if tok is not None else None
    rows = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    counts = [sum(1 for t in row if t == image_id) for row in rows]
    sizes = tower_sizes(processor, inputs)
    per_row: list[list[tuple[int, int]]] = [[] for _ in rows]
    if sizes and len(rows) == 1:
        per_row[0] = sizes
    elif sizes and len(sizes) == len(rows):
        per_row = [[s] for s in sizes]
    return list(zip(counts, per_row))


def tower_sizes(processor: Any, inputs: Any) -> list[tuple[int, int]]:
    """``[width, height]`` of each image as the vision tower received it (anyres: its canvas)."""
    image_processor = getattr(processor, "image_processor", None)
    grid = inputs.get("image_grid_thw")
    if grid is not None:  # Qwen-VL: patches of patch_size, (t, h, w) per image
        patch = int(getattr(image_processor, "patch_size", 14) or 14)
        return [(int(w) * patch, int(h) * patch) for _, h, w in grid.tolist()]
    pixels = inputs.get("pixel_values")
    if pixels is None or not hasattr(pixels, "shape"):
        return []
    sizes = inputs.get("image_sizes")
    if sizes is not None and pixels.dim() == 5:  # anyres: the best-fit canvas of the grid pinpoints
        from transformers.image_processing_utils import select_best_resolution

        pinpoints = getattr(image_processor, "image_grid_pinpoints", None) or []
        out = []
        for h, w in sizes.tolist():
            bh, bw = select_best_resolution((int(h), int(w)), pinpoints) if pinpoints else (int(h), int(w))
            out.append((int(bw), int(bh)))
        return out
    if pixels.dim() == 4:
        return [(int(pixels.shape[-1]), int(pixels.shape[-2]))] * int(pixels.shape[0])
    return []
