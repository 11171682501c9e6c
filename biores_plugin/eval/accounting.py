"""What each sample's image really cost: pixel size and visual tokens the model consumed.

Observes, never drives: lmms-eval's own Qwen-VL / LLaVA wrappers run exactly as without biores
(same ``generate()`` calls, same rows, same progress bars). Three reversible hooks (group
``"lmms_eval.accounting"``) only watch:

- the watched wrapper's ``generate_until`` opens a record for the call (one call, all requests);
- ``lmms_eval.utils.Collator.__init__`` remembers the collator the wrapper builds over those
  requests: its ``reorder_indices`` say which request each sorted row is;
- the HF model class's ``generate`` counts, per row of ``input_ids`` it receives, the image
  tokens, and the tower's pixel sizes from ``image_grid_thw`` / ``pixel_values``.

Row ``k`` of all ``generate()`` calls (in order) is request ``collator.reorder_indices[k]``; its
counts go into the samples log's ``token_counts`` (``visual_tokens``, ``visual_tokens_sizes``).
A count that cannot be made says why (``visual_tokens_missing``). docs/accounting.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from lmms_eval.api.instance import GenerationResult, TokenCounts

from .. import patching

GROUP = "lmms_eval.accounting"
#: lmms-eval wrapper classes (module suffix after ``lmms_eval.models.``, class name) biores accounts for.
WATCHED = {
    ("simple.qwen2_vl", "Qwen2_VL"),
    ("simple.qwen2_5_vl", "Qwen2_5_VL"),
    ("chat.qwen2_5_vl", "Qwen2_5_VL"),
    ("simple.qwen3_vl", "Qwen3_VL"),
    ("chat.qwen3_vl", "Qwen3_VL"),
    ("simple.llava_hf", "LlavaHf"),
    ("chat.llava_hf", "LlavaHf"),  # llava_hf also runs the -hf LLaVA-NeXT and LLaVA-OneVision checkpoints
}


@dataclass
class VisualTokenCounts(TokenCounts):
    """lmms-eval token counts plus what the vision side consumed (sizes are ``[width, height]``)."""

    visual_tokens: int | None = None
    visual_tokens_sizes: list = field(default_factory=list)
    visual_tokens_missing: str | None = None  # why no count could be made

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.visual_tokens is not None:
            out["visual_tokens"] = self.visual_tokens
        if self.visual_tokens_sizes:
            out["visual_tokens_sizes"] = [list(s) for s in self.visual_tokens_sizes]
        if self.visual_tokens is None and self.visual_tokens_missing:
            out["visual_tokens_missing"] = self.visual_tokens_missing
        return out


@dataclass
class _Call:
    """One watched ``generate_until`` call: its requests' rows as ``generate()`` receives them."""

    n: int
    collator: Any = None
    rows_seen: int = 0
    counts: dict = field(default_factory=dict)  # request index -> (tokens, sizes)
    problem: str | None = None


_STATE = threading.local()


def _active() -> _Call | None:
    return getattr(_STATE, "call", None)


# --------------------------------------------------------------------------- reading model inputs


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


# --------------------------------------------------------------------------- hooks


def _model_generate_hook(original):
    def hook(self, *args, **kwargs):
        call = _active()
        if call is not None:
            _observe(call, self, kwargs)
        return original(self, *args, **kwargs)

    return hook


def _observe(call: _Call, model: Any, inputs: dict) -> None:
    seen = generate_rows(model, inputs)
    if isinstance(seen, str):
        call.problem = call.problem or seen
        return
    counts, sizes = seen
    order = getattr(call.collator, "reorder_indices", None)
    start, call.rows_seen = call.rows_seen, call.rows_seen + len(counts)
    if order is None:
        call.problem = call.problem or "the wrapper built no lmms-eval Collator over its requests"
        return
    if len(order) < call.rows_seen:
        call.problem = call.problem or "generate() received more rows than the wrapper had sorted"
        return
    for offset, (tokens, row_sizes) in enumerate(zip(counts, sizes)):
        call.counts[order[start + offset]] = (int(tokens), row_sizes)


def _collator_init_hook(original):
    def hook(self, arr, *args, **kwargs):
        original(self, arr, *args, **kwargs)
        call = _active()
        if call is not None and call.collator is None and len(arr) == call.n:
            call.collator = self

    return hook


def _watch_model(wrapper: Any) -> None:
    model = getattr(wrapper, "model", None)
    cls = type(model)
    if model is not None and hasattr(cls, "generate") and cls.__module__.startswith("transformers."):
        patching.wrap(cls, "generate", _model_generate_hook, group=GROUP)


def _generate_until_hook(original):
    def hook(self, requests):
        if _active() is not None:  # a nested call: the outer one accounts
            return original(self, requests)
        _watch_model(self)
        call = _Call(n=len(requests))
        _STATE.call = call
        try:
            results = original(self, requests)
        finally:
            _STATE.call = None
        if call.rows_seen != len(requests) and call.problem is None:
            call.problem = f"generate() received {call.rows_seen} rows for {len(requests)} requests"
        return [_with_counts(result, call, i) for i, result in enumerate(results)]

    return hook


def _with_counts(result: Any, call: _Call, index: int) -> Any:
    text, base = (result.text, result.token_counts) if isinstance(result, GenerationResult) else (result, None)
    found = call.counts.get(index) if call.problem is None else None
    counts = VisualTokenCounts(
        input_tokens=getattr(base, "input_tokens", None),
        output_tokens=getattr(base, "output_tokens", None),
        reasoning_tokens=getattr(base, "reasoning_tokens", None),
        visual_tokens=found[0] if found else None,
        visual_tokens_sizes=list(found[1]) if found else [],
        visual_tokens_missing=None if found else (call.problem or "no generate() row was observed for this request"),
    )
    return GenerationResult(text=text, token_counts=counts)


def watch_model_class(cls: type) -> bool:
    """Install the accounting hook on one lmms-eval wrapper class (if it is watched)."""
    module = cls.__module__.removeprefix("lmms_eval.models.")
    if (module, cls.__name__) not in WATCHED:
        return False
    patching.wrap(cls, "generate_until", _generate_until_hook, group=GROUP)
    return True


def install() -> None:
    """Watch every wrapper class lmms-eval resolves (``ModelRegistryV2.get_model_class``)."""
    from lmms_eval import utils
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    def get_model_class(original):
        def hook(self, *args, **kwargs):
            cls = original(self, *args, **kwargs)
            if isinstance(cls, type):
                watch_model_class(cls)
            return cls

        return hook

    patching.wrap(utils.Collator, "__init__", _collator_init_hook, group=GROUP)
    patching.wrap(ModelRegistryV2, "get_model_class", get_model_class, group=GROUP)


def uninstall() -> None:
    patching.revert(GROUP)
