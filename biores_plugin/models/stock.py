"""Stock HF vision-language checkpoints (LLaVA-NeXT, LLaVA-OneVision, Qwen2/2.5/3-VL) in biores.

:class:`StockVLM` loads the checkpoint's own model and processor classes strictly (a missing or
unexpected weight is a one-line error), builds prompts with the processor's chat template and
structured image parts, and reports what each sample's images cost (docs/native_llava.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import BioresConfigError
from .native_llava import check_loading_info

#: model_type -> the processor kwargs biores may set (the rest of the policy is the checkpoint's).
FAMILIES = {
    "llava_next": (), "llava_onevision": (),
    "qwen2_vl": ("min_pixels", "max_pixels"), "qwen2_5_vl": ("min_pixels", "max_pixels"), "qwen3_vl": ("min_pixels", "max_pixels"),
}


def model_type(directory: str | Path) -> str | None:
    file = Path(directory) / "config.json"
    return json.loads(file.read_text()).get("model_type") if file.is_file() else None


class StockVLM:
    """The checkpoint's own ``AutoModelForImageTextToText`` + ``AutoProcessor``."""

    def __init__(self, directory: str | Path, *, dtype: torch.dtype = torch.float32, device: Any = "cpu", **policy: Any):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        kind = model_type(directory)
        if kind not in FAMILIES:
            raise BioresConfigError(f"{directory}: model_type {kind!r} is not one of {', '.join(sorted(FAMILIES))}")
        given = {k: v for k, v in policy.items() if v is not None}
        bad = sorted(set(given) - set(FAMILIES[kind]))
        if bad:
            allowed = ", ".join(FAMILIES[kind]) or "none"
            raise BioresConfigError(f"{kind} checkpoints run at their own processor's policy; {', '.join(bad)} not supported (allowed: {allowed})")
        self.processor = AutoProcessor.from_pretrained(directory, **given)  # Qwen-VL: min/max_pixels, as lmms-eval does
        model, info = AutoModelForImageTextToText.from_pretrained(directory, dtype=dtype, output_loading_info=True)
        check_loading_info(info, directory)
        self.model = model.to(device).eval()
        self.kind = kind
        self.tokenizer = self.processor.tokenizer
        self.image_token = getattr(self.processor, "image_token", "<image>")

    def build_prompt(self, text: str, n_images: int) -> str:
        """The chat template with ``n_images`` ``{"type": "image"}`` parts, then the text."""
        text = text.replace("<image>", "").strip() if n_images else text
        parts = [*({"type": "image"} for _ in range(n_images)), {"type": "text", "text": text}]
        return self.processor.apply_chat_template([{"role": "user", "content": parts}], add_generation_prompt=True, tokenize=False)

    def __call__(self, texts: Sequence[str], images: Sequence[Sequence[Any]], *, padding_side: str = "left") -> dict[str, Any]:
        from ..eval.accounting import consumed, tower_sizes
        from ..image_io import load_image

        flat = [load_image(img, copy=False) for sample in images for img in sample]
        self.tokenizer.padding_side = padding_side
        batch = self.processor(text=list(texts), images=flat or None, return_tensors="pt", padding=True)
        rows = consumed(self.processor, batch)
        sizes = tower_sizes(self.processor, batch)
        per_sample, cursor = [], 0
        for sample in images:  # sizes are per image; rows are per sample
            per_sample.append(sizes[cursor : cursor + len(sample)])
            cursor += len(sample)
        return {"inputs": batch, "visual_tokens_per_sample": [r[0] for r in rows], "sizes_per_sample": per_sample}
