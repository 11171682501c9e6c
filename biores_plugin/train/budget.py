"""What one forward holds: rows, padding and image tokens (the batch log), and the visual-token budget per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import BatchRebalanceSampler

from ..errors import BioresConfigError


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


class VisualTokenBudgetSampler(BatchRebalanceSampler):
    """``--max_visual_tokens_per_batch``: batches cut from a sampler's order so that none holds more than
    ``budget`` image tokens (nor more than ``batch_size`` samples).

    transformers' Trainer hands a ``BatchRebalanceSampler`` to the DataLoader as its ``batch_sampler``; this one
    keeps the base sampler's order (seeded per epoch, token-grouped) and only decides where batches end, so
    resume replays the same batches. Batch sizes vary; the batch log records each forward's image tokens.
    """

    def __init__(self, base: Sampler[int], visual_tokens: Sequence[int], batch_size: int, budget: int):
        self.base, self.tokens, self.batch_size, self.budget = (
            base,
            list(visual_tokens),
            max(1, int(batch_size)),
            int(budget),
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of ``epoch`` (default: the current one)."""
        order = (
            self.base.order(self.epoch if epoch is None else epoch) if hasattr(self.base, "order") else list(self.base)
        )
        out: list[list[int]] = []
        batch: list[int] = []
        used = 0
        for index in order:
            cost = self.tokens[index]
            if batch and (len(batch) == self.batch_size or used + cost > self.budget):
                out.append(batch)
                batch, used = [], 0
            batch.append(index)
            used += cost
        return out + ([batch] if batch else [])

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())

    def order(self, epoch: int) -> list[int]:
        return [i for batch in self.batches(epoch) for i in batch]

    def samples_in(self, n_batches: int) -> int:
        """Samples in the first ``n_batches`` batches of the run (epoch after epoch)."""
        total, epoch = 0, 0
        while n_batches > 0:
            sizes = [len(b) for b in self.batches(epoch)]
            total += sum(sizes[:n_batches])
            n_batches -= len(sizes)
            epoch += 1
        return total


def check_visual_budget(dataset: Any, budget: int | None) -> list[int]:
    """Each sample's image tokens; a one-line error naming the first image that alone exceeds ``budget``."""
    if budget is None:
        return []
    if budget < 1:
        raise BioresConfigError(f"--max_visual_tokens_per_batch must be a positive integer, got {budget}")
    counts = [dataset.visual_tokens(i) for i in range(len(dataset))]
    for index, count in enumerate(counts):
        if count > budget:
            record = dataset.records[index]
            source = (
                f"{len(record.image)} image bytes"
                if isinstance(record.image, (bytes, bytearray))
                else str(record.image)
            )
            raise BioresConfigError(
                f"--max_visual_tokens_per_batch {budget}: training sample {index} "
                f"({source}, {record.size[0]}x{record.size[1]} px) "
                f"alone has {count} image tokens; lower --max_pixels so every image fits, or raise the budget"
            )
    return counts
