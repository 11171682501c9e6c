"""What each sample's image really cost: pixel size and visual tokens the model consumed.

Reversible hooks (group ``"lmms_eval.accounting"``) on lmms-eval's own Qwen-VL / LLaVA wrappers
and on their HF processors' ``__call__``: the counts come from the processor's output (image
tokens in ``input_ids``, ``image_grid_thw``, ``pixel_values``), per request, into the samples
log's ``token_counts`` (``visual_tokens``, ``visual_tokens_sizes``). docs/accounting.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from lmms_eval.api.instance import GenerationResult, TokenCounts

from .. import patching

GROUP = "lmms_eval.accounting"
#: lmms-eval wrapper classes (module suffix after ``lmms_eval.models.``, class name) biores accounts for.
WATCHED = {
    ("simple.qwen2_vl", "Qwen2_VL"), ("simple.qwen2_5_vl", "Qwen2_5_VL"), ("chat.qwen2_5_vl", "Qwen2_5_VL"),
    ("simple.qwen3_vl", "Qwen3_VL"), ("chat.qwen3_vl", "Qwen3_VL"), ("simple.llava_hf", "LlavaHf"),
    ("chat.llava_hf", "LlavaHf"),  # llava_hf also runs the -hf LLaVA-NeXT and LLaVA-OneVision checkpoints
}


@dataclass
class VisualTokenCounts(TokenCounts):
    """lmms-eval token counts plus what the vision side consumed (sizes are ``[width, height]``)."""

    visual_tokens: Optional[int] = None
    visual_tokens_sizes: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.visual_tokens is not None:
            out["visual_tokens"] = self.visual_tokens
        if self.visual_tokens_sizes:
            out["visual_tokens_sizes"] = [list(s) for s in self.visual_tokens_sizes]
        return out


_STATE = threading.local()


def _records() -> list | None:
    return getattr(_STATE, "records", None)


# --------------------------------------------------------------------------- reading processor outputs


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


# --------------------------------------------------------------------------- hooks


def _processor_hook(original):
    def hook(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        records = _records()
        if records is not None:
            try:
                records.extend(consumed(self, out))
            except Exception:  # accounting must never break a run; the count is then absent
                pass
        return out

    return hook


def _watch_processor(processor: Any) -> None:
    cls = type(processor)
    if hasattr(cls, "__call__") and cls.__module__.startswith("transformers."):
        patching.wrap(cls, "__call__", _processor_hook, group=GROUP)


def _generate_hook(original):
    def hook(self, requests):
        processor = next((getattr(self, a) for a in ("processor", "_processor", "_image_processor") if getattr(self, a, None) is not None), None)
        if processor is not None:
            _watch_processor(processor)
        results = []
        for request in requests:  # one at a time: every processor call then belongs to this request
            _STATE.records = []
            try:
                out = original(self, [request])
            finally:
                records, _STATE.records = _STATE.records, None
            results.append(_with_counts(out[0] if out else None, records))
        return results

    return hook


def _with_counts(result: Any, records: list) -> Any:
    if not records:
        return result
    tokens = sum(r[0] for r in records[-1:])  # the last call is the one generate() consumed
    sizes = [s for s in records[-1][1]]
    text, base = (result.text, result.token_counts) if isinstance(result, GenerationResult) else (result, None)
    counts = VisualTokenCounts(
        input_tokens=getattr(base, "input_tokens", None), output_tokens=getattr(base, "output_tokens", None),
        reasoning_tokens=getattr(base, "reasoning_tokens", None), visual_tokens=int(tokens), visual_tokens_sizes=sizes,
    )
    return GenerationResult(text=text, token_counts=counts)


def watch_model_class(cls: type) -> bool:
    """Install the per-request accounting hook on one lmms-eval wrapper class (if it is watched)."""
    module = cls.__module__.removeprefix("lmms_eval.models.")
    if (module, cls.__name__) not in WATCHED:
        return False
    patching.wrap(cls, "generate_until", _generate_hook, group=GROUP)
    return True


def install() -> None:
    """Watch every wrapper class lmms-eval resolves (``ModelRegistryV2.get_model_class``)."""
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    def get_model_class(original):
        def hook(self, *args, **kwargs):
            cls = original(self, *args, **kwargs)
            try:
                watch_model_class(cls)
            except Exception:  # pragma: no cover - never block model loading
                pass
            return cls

        return hook

    patching.wrap(ModelRegistryV2, "get_model_class", get_model_class, group=GROUP)


def uninstall() -> None:
    patching.revert(GROUP)
