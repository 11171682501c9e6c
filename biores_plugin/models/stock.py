"""Stock HF vision-language checkpoints (LLaVA-NeXT, LLaVA-OneVision, Qwen2/2.5/3-VL at evaluation).

:func:`load_stock` loads the checkpoint's own model and processor classes strictly (a missing or
unexpected weight is a one-line error); :class:`StockProcessor` builds prompts with the
processor's chat template and structured image parts, and reports what each sample's images
cost, behind the same ``build_prompt`` / ``encode`` interface as biores' native processor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .checkpoint import check_loading_info
from .counting import Encoded, consumed, per_sample, tower_sizes


class StockProcessor:
    """A checkpoint's own ``AutoProcessor`` behind biores' processor interface."""

    def __init__(self, hf_processor: Any):
        self.hf = hf_processor
        self.tokenizer = hf_processor.tokenizer
        self.image_token = getattr(hf_processor, "image_token", "<image>")

    def build_prompt(self, text: str, n_images: int) -> str:
        """The chat template with ``n_images`` ``{"type": "image"}`` parts, then the text."""
        text = text.replace("<image>", "").strip() if n_images else text
        parts = [*({"type": "image"} for _ in range(n_images)), {"type": "text", "text": text}]
        messages = [{"role": "user", "content": parts}]
        return self.hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, texts: Sequence[str], images: Sequence[Sequence[Any]], *, padding_side: str = "left") -> Encoded:
        from ..image_io import load_image

        flat = [load_image(img, copy=False) for sample in images for img in sample]
        self.tokenizer.padding_side = padding_side
        batch = self.hf(text=list(texts), images=flat or None, return_tensors="pt", padding=True)
        rows = consumed(self.hf, batch)
        return Encoded(dict(batch), [r[0] for r in rows], per_sample(tower_sizes(self.hf, batch), images))


def load_stock(
    directory: str | Path, policy: dict[str, Any], *, dtype: torch.dtype = torch.float32, **load_kwargs: Any
) -> tuple[Any, StockProcessor]:
    """The checkpoint's own ``AutoModelForImageTextToText`` and ``AutoProcessor``; ``policy``
    (Qwen-VL: ``min_pixels`` / ``max_pixels``) goes to the processor, as lmms-eval passes it."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(directory, **policy)
    model, info = AutoModelForImageTextToText.from_pretrained(
        directory, dtype=dtype, output_loading_info=True, **load_kwargs
    )
    check_loading_info(info, directory)
    return model, StockProcessor(processor)
