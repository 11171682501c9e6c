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
from ..models.counting import consumed, tower_sizes  # noqa: F401  (re-exported; models/ owns them)

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
    if callable(processor) and cls.__module__.startswith("transformers."):
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
