"""``biores_llava``: native-resolution LLaVA for lmms-eval (simple and chat styles).

``lmms-eval --model biores_llava --model_args pretrained=PATH,image_aspect_ratio=native,...``;
policy arguments left out come from the checkpoint. Each sample logs its visual tokens.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import torch
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms
from PIL import Image
from tqdm import tqdm

from ..errors import BioresConfigError
from ..models import Encoded
from .accounting import VisualTokenCounts

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def _opt_int(value: Any) -> Optional[int]:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise BioresConfigError(f"expected an integer, got {value!r}") from None


class BioresLlava(lmms):
    """Simple style: gets ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        device: str = "cpu",
        batch_size: int | str = 1,
        image_aspect_ratio: Optional[str] = None,
        min_pixels: Any = None,
        max_pixels: Any = None,
        merge_size: Any = None,
        attn_implementation: Optional[str] = None,
        vision_backend: str = "auto",
        dtype: str = "float32",
        max_new_tokens: Any = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from pathlib import Path

        from ..models import load

        unknown = sorted(k for k in kwargs if k not in ("trust_remote_code", "use_cache"))
        if unknown:
            raise BioresConfigError(f"biores_llava got unknown model_args: {', '.join(unknown)}")
        if not Path(pretrained).is_dir():
            raise BioresConfigError(f"pretrained={pretrained} is not a local checkpoint folder")
        if str(dtype) not in _DTYPES:
            raise BioresConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        self._set_rank(device)
        policy = {
            "image_aspect_ratio": image_aspect_ratio,
            "min_pixels": _opt_int(min_pixels),
            "max_pixels": _opt_int(max_pixels),
            "merge_size": _opt_int(merge_size),
        }
        model, self.processor = load(
            pretrained,
            policy,
            dtype=_DTYPES[str(dtype)],
            attn_implementation=attn_implementation,
            vision_backend=vision_backend,
            flag="pretrained=",
        )
        self.model = model.to(self._device).eval()
        self.tokenizer = self.processor.tokenizer
        self.batch_size_per_gpu = max(1, int(batch_size))
        self.max_new_tokens = int(max_new_tokens)

    def _set_rank(self, device: str) -> None:
        """Data parallel under ``accelerate launch`` / ``torchrun``: this process' rank, world size
        and device (``cuda`` -> ``cuda:LOCAL_RANK``), from the launcher's environment."""
        import os

        self._device = torch.device(device)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            from accelerate import Accelerator
            from loguru import logger

            self.accelerator = Accelerator(cpu=self._device.type == "cpu")
            self._rank, self._world_size = int(os.environ.get("RANK", "0")), world
            if self._device.type == "cuda":
                self._device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
            logger.info(f"biores_llava: rank {self._rank} of {self._world_size} on {self._device}")

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: Optional[dict] = None) -> BioresLlava:
        """``--model_args`` win over the CLI's ``--batch_size`` / ``--device`` (lmms-eval would
        otherwise pass both and fail with 'multiple values for keyword argument')."""
        from lmms_eval import utils

        from ..errors import BioresError
        from ..task_library import images

        images.stop_cli_runs_cleanly()  # a biores error while generating: one line and exit 2 in the CLI
        args = utils.simple_parse_args_string(arg_string)
        extra = {
            k: v
            for k, v in (additional_config or {}).items()
            if v is not None and k not in args and k != "max_batch_size"
        }
        try:
            return cls(**args, **extra)
        except BioresError as exc:
            images.end_cli_run(f"biores_llava: {exc}")  # the CLI: one line, exit 2
            raise

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> torch.device:
        return self._device

    # -- request plumbing

    def _sample(self, args: tuple) -> tuple[str, list[Image.Image], dict]:
        ctx, gen_kwargs, doc_to_visual, doc_id, task, split = args
        doc = self.task_dict[task][split][doc_id]
        visuals = [v for v in (doc_to_visual(doc) or []) if isinstance(v, Image.Image)]
        return ctx, visuals, gen_kwargs

    def _to_device(self, inputs: dict) -> dict:
        """Tensors to this rank's device; images (one tensor or a list) also to the model's dtype."""
        out = {}
        for key, value in inputs.items():
            if key == "pixel_values":
                value = (
                    [p.to(self._device, self.model.dtype) for p in value]
                    if isinstance(value, (list, tuple))
                    else value.to(self._device, self.model.dtype)
                )
            elif torch.is_tensor(value):
                value = value.to(self._device)
            out[key] = value
        return out

    def _encode(self, prompts: list[str], images: list[list[Image.Image]], padding_side: str = "left") -> Encoded:
        """Model inputs, visual tokens per sample and the tower's ``[w, h]`` per image."""
        return self.processor.encode(prompts, images, padding_side=padding_side)

    def _generate(
        self, prompts: list[str], images: list[list[Image.Image]], gen_kwargs: dict
    ) -> list[GenerationResult]:
        texts = [self.processor.build_prompt(p, len(imgs)) for p, imgs in zip(prompts, images)]
        inputs, visual, sizes = self._encode(texts, images)
        until = gen_kwargs.get("until") or []
        max_new = int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens)
        temperature = float(gen_kwargs.get("temperature") or 0.0)
        inputs = self._to_device(inputs)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_new,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        results = []
        for row, visual_tokens, size, ids in zip(new_tokens, visual, sizes, inputs["input_ids"]):
            text = self.tokenizer.decode(row, skip_special_tokens=True).strip()
            for stop in until if isinstance(until, list) else [until]:
                if stop and stop in text:
                    text = text.split(stop)[0]
            n_out = int((row != self.tokenizer.pad_token_id).sum())
            n_in = int((ids != self.tokenizer.pad_token_id).sum())
            counts = VisualTokenCounts(
                input_tokens=n_in, output_tokens=n_out, visual_tokens=int(visual_tokens), visual_tokens_sizes=size
            )
            results.append(GenerationResult(text=text, token_counts=counts))
        return results

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        results: list[Optional[GenerationResult]] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].args[0]))
        bar = tqdm(total=len(requests), desc="biores_llava", disable=self.rank != 0)
        start = time.time()
        for begin in range(0, len(order), self.batch_size):
            chunk = order[begin : begin + self.batch_size]
            samples = [self._sample(requests[i].args) for i in chunk]
            # one batch per identical generation settings (lmms-eval groups them the same way)
            groups: dict[str, list[int]] = {}
            for pos, (_, _, gen_kwargs) in enumerate(samples):
                groups.setdefault(repr(sorted(gen_kwargs.items())), []).append(pos)
            for positions in groups.values():
                outs = self._generate(
                    [samples[p][0] for p in positions], [samples[p][1] for p in positions], samples[positions[0]][2]
                )
                for p, out in zip(positions, outs):
                    results[chunk[p]] = out
            bar.update(len(chunk))
        bar.close()
        self.last_generation_seconds = time.time() - start
        return results  # type: ignore[return-value]

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        out = []
        for request in requests:
            ctx, continuation, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            visuals = [v for v in (doc_to_visual(doc) or []) if isinstance(v, Image.Image)]
            prompt = self.processor.build_prompt(ctx, len(visuals))
            full, _, _ = self._encode([prompt + continuation], [visuals], padding_side="right")
            ctx_only, _, _ = self._encode([prompt], [visuals], padding_side="right")
            n_ctx = int(ctx_only["attention_mask"].sum())
            with torch.inference_mode():
                logits = self.model(**self._to_device(full)).logits[0]
            targets = full["input_ids"][0, n_ctx:].to(self._device)
            logprobs = torch.log_softmax(logits[n_ctx - 1 : -1].float(), dim=-1)
            picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            greedy = bool((logprobs.argmax(-1) == targets).all())
            out.append((float(picked.sum()), greedy))
        return out

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("biores_llava does not support multi-round generation")


class BioresLlavaChat(BioresLlava):
    """Chat style: gets ``(context, doc_to_messages, gen_kwargs, doc_id, task, split)``."""

    is_simple = False

    def _sample(self, args: tuple) -> tuple[str, list[Image.Image], dict]:
        ctx, doc_to_messages, gen_kwargs, doc_id, task, split = args
        doc = self.task_dict[task][split][doc_id]
        messages = doc_to_messages(doc)
        images, texts = [], []
        for message in messages:
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            for part in content or []:
                kind = part.get("type")
                if kind == "image":
                    image = part.get("url") if part.get("url") is not None else part.get("image")
                    if isinstance(image, Image.Image):
                        images.append(image)
                        texts.append(self.processor.image_token)
                elif kind == "text":
                    texts.append(part.get("text", ""))
        return " ".join(texts), images, gen_kwargs
