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


def tower_sizes(
    processor: Any, inputs: Any, patch: int | None = None, pinpoints: list | None = None
) -> list[tuple[int, int]]:
    """``[width, height]`` of each image as the vision tower received it (anyres: its canvas)."""
    image_processor = getattr(processor, "image_processor", None)
    grid = inputs.get("image_grid_thw")
    if grid is not None:  # Qwen-VL: patches of patch_size, (t, h, w) per image
        patch = int(patch or getattr(image_processor, "patch_size", 14) or 14)
        return [(int(w) * patch, int(h) * patch) for _, h, w in grid.tolist()]
    pixels = inputs.get("pixel_values")
    if pixels is None or not hasattr(pixels, "shape"):
        return []
    sizes = inputs.get("image_sizes")
    if sizes is not None and pixels.dim() == 5:  # anyres: the best-fit canvas of the grid pinpoints
        from transformers.image_processing_utils import select_best_resolution

        pinpoints = pinpoints or getattr(image_processor, "image_grid_pinpoints", None) or []
        out = []
        for h, w in sizes.tolist():
            bh, bw = select_best_resolution((int(h), int(w)), pinpoints) if pinpoints else (int(h), int(w))
            out.append((int(bw), int(bh)))
        return out
    if pixels.dim() == 4:
        return [(int(pixels.shape[-1]), int(pixels.shape[-2]))] * int(pixels.shape[0])
    return []


def _image_token_id(model: Any) -> int | None:
    config = getattr(model, "config", None)
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def generate_rows(model: Any, inputs: dict) -> tuple[list[int], list[list[tuple[int, int]]]] | str:
    """What one ``generate()`` call received, per row: image tokens in ``input_ids`` and the
    tower's ``[width, height]`` per image; or why it cannot be counted (a one-line reason)."""
    ids = inputs.get("input_ids")
    if ids is None or not hasattr(ids, "dim") or ids.dim() != 2:
        return "generate() received no 2-D input_ids"
    image_id = _image_token_id(model)
    if image_id is None:
        return f"{type(model).__name__}.config names no image token id"
    counts = (ids == image_id).sum(dim=1).tolist()
    vision = getattr(model.config, "vision_config", None)
    patch = getattr(vision, "patch_size", None)
    sizes = tower_sizes(None, inputs, patch=patch, pinpoints=getattr(model.config, "image_grid_pinpoints", None))
    per_row: list[list[tuple[int, int]]] = [[] for _ in counts]
    grid = inputs.get("image_grid_thw")
    if grid is not None:  # images in row order; each spends t*h*w / merge^2 tokens of its row
        merge = int(getattr(vision, "spatial_merge_size", 2) or 2)
        costs = [int(t) * int(h) * int(w) // (merge * merge) for t, h, w in grid.tolist()]
        cursor = 0
        for row, count in enumerate(counts):
            spent = 0
            while cursor < len(costs) and spent < count:
                spent += costs[cursor]
                per_row[row].append(sizes[cursor])
                cursor += 1
    elif sizes and len(sizes) == len(counts):
        per_row = [[s] for s in sizes]
    elif sizes and len(counts) == 1:
        per_row = [sizes]
    return counts, per_row
