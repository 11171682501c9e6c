"""``--mixed_schedule``: how a ``--mixed_resolution`` mix reaches the batches, and its loss.

``draw`` gives each image one seeded level (token-grouped batches); ``dataset`` trains on every
image at every level; ``balanced`` gives each batch each level's share of images; ``paired``
puts every image at all levels in one batch. ``--mixed_loss_normalization per_resolution``
averages the loss within each resolution, then across them. docs/demo.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from ..errors import BioresConfigError

SCHEDULES = ("draw", "dataset", "balanced", "paired")
NORMALIZATIONS = ("token", "per_resolution")


def check_schedule(schedule: str, normalization: str = "token") -> None:
    """One-line errors for unknown ``--mixed_schedule`` / ``--mixed_loss_normalization`` values."""
    if schedule not in SCHEDULES:
        raise BioresConfigError(f"--mixed_schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    if normalization not in NORMALIZATIONS:
        raise BioresConfigError(
            f"--mixed_loss_normalization must be one of {', '.join(NORMALIZATIONS)}; got {normalization!r}"
        )


def share_counts(batch_size: int, probabilities: Sequence[float]) -> list[int]:
    """Images per level in a batch of ``batch_size`` (largest remainder; sums to ``batch_size``)."""
    raw = [batch_size * p for p in probabilities]
    counts = [int(r) for r in raw]
    for k in sorted(range(len(raw)), key=lambda k: counts[k] - raw[k])[: batch_size - sum(counts)]:
        counts[k] += 1
    return counts


class ScheduleSampler(Sampler[int]):
    """Virtual index ``image * n_levels + level`` over a dataset holding every image at every level.

    ``order(epoch)`` is a pure function of ``(seed, epoch)``, so resume replays the same batches.
    """

    def __init__(self, schedule: str, n_images: int, probabilities: Sequence[float], batch_size: int, seed: int = 0):
        check_schedule(schedule)
        if schedule == "paired" and batch_size % len(probabilities):
            raise BioresConfigError(
                f"--mixed_schedule paired needs a batch size divisible by the {len(probabilities)} levels, got "
                f"{batch_size}"
            )
        self.schedule, self.n, self.p, self.batch_size, self.seed = (
            schedule,
            int(n_images),
            list(probabilities),
            int(batch_size),
            int(seed),
        )
        self.levels, self.epoch = len(self.p), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n * (self.levels if self.schedule in ("dataset", "paired") else 1)

    def _batches(self, items: list[int]) -> list[list[int]]:
        return [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]

    def order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + 7919 + epoch)
        L = self.levels
        if self.schedule == "dataset":  # every (image, level) once per epoch, shuffled
            return torch.randperm(L * self.n, generator=g).tolist()
        images = torch.randperm(self.n, generator=g).tolist()
        if self.schedule == "paired":  # batch_size / L images, each at every level
            return [i * L + k for i in images for k in range(L)]
        out: list[int] = []
        for batch in self._batches(images):  # balanced: each level's share of every batch
            counts = share_counts(len(batch), self.p)
            levels = [k for k, c in enumerate(counts) for _ in range(c)]
            shuffle = torch.randperm(len(levels), generator=g).tolist()
            out += [i * L + levels[shuffle[j]] for j, i in enumerate(batch)]
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch))


def build_schedule(
    data_args: Any,
    training_args: Any,
    records: Sequence[Any],
    processor: Any,
    weights: dict[str, float],
    batch_size: int,
) -> tuple[Any, Any]:
    """The training dataset and its sampler for ``--mixed_schedule``.

    ``draw`` keeps one seeded level per image and the token-grouped sampler; the other
    schedules hold every image at every level and sample them with a :class:`ScheduleSampler`.
    """
    from .data import ResolutionDataset, TokenCountGroupedSampler

    schedule, seed = data_args.mixed_schedule, training_args.seed
    check_schedule(schedule, data_args.mixed_loss_normalization)
    mix = processor.resolution.mixed(seed)
    cache_mb = data_args.sample_cache_mb
    if schedule == "draw" or len(mix.levels) == 1:
        dataset = ResolutionDataset(
            records, processor, mix.draws(len(records)), weights, training_args.model_max_length, cache_mb
        )
        counts = (
            [dataset.token_count(i) for i in range(len(dataset))]
            if training_args.group_by_token_count
            else [0] * len(dataset)
        )
        return dataset, TokenCountGroupedSampler(counts, batch_size, seed=seed)
    items = [r for r in records for _ in mix.levels]
    levels = [level for _ in records for level in mix.levels]
    dataset = ResolutionDataset(items, processor, levels, weights, training_args.model_max_length, cache_mb)
    return dataset, ScheduleSampler(schedule, len(records), [p for _, p in mix.entries], batch_size, seed)


def normalized_loss(
    ce: torch.Tensor, weight: torch.Tensor, groups: torch.Tensor | None, normalization: str
) -> torch.Tensor:
    """Weighted answer loss: one mean over every token (``token``), or a mean per group of
    samples with the same visual-token count (one resolution), averaged over groups."""
    if normalization != "per_resolution" or groups is None:
        return (ce * weight).sum() / weight.sum().clamp_min(1e-8)
    means = []
    for value in groups.unique():
        rows = groups == value
        w = weight[rows]
        if w.sum() > 0:
            means.append((ce[rows] * w).sum() / w.sum())
    return torch.stack(means).mean() if means else (ce * weight).sum() * 0.0
