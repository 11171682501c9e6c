"""biores-train --mixed_schedule / --mixed_loss_normalization: batches, validation, loss."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch
from train_flags import TINY_SIGLIP

from biores_plugin.errors import BioresConfigError
from biores_plugin.train.mixing import ScheduleSampler, check_schedule, normalized_loss, share_counts


@pytest.mark.parametrize(
    "batch, probs, expected",
    [(32, [0.5, 0.5], [16, 16]), (32, [0.6, 0.4], [19, 13]), (5, [1 / 3] * 3, [2, 2, 1]), (7, [0.5, 0.5], [4, 3])],
)
def test_share_counts_fill_the_batch_by_largest_remainder(batch, probs, expected):
    assert share_counts(batch, probs) == expected


def _batches(order, size):
    return [order[i : i + size] for i in range(0, len(order), size)]


def test_balanced_gives_every_batch_each_levels_share_and_every_image_once():
    sampler = ScheduleSampler("balanced", 96, [0.5, 0.5], 8, seed=3)
    order = sampler.order(0)
    assert len(order) == len(sampler) == 96
    assert sorted(i // 2 for i in order) == list(range(96))  # each image once per epoch
    for batch in _batches(order, 8):
        assert Counter(i % 2 for i in batch) == {0: 4, 1: 4}
    assert sampler.order(0) == ScheduleSampler("balanced", 96, [0.5, 0.5], 8, seed=3).order(0)  # resume replays it
    assert sampler.order(1) != order and ScheduleSampler("balanced", 96, [0.5, 0.5], 8, seed=4).order(0) != order
    # an image's level changes between epochs: over many epochs each image meets both levels
    levels = {i: set() for i in range(96)}
    for epoch in range(20):
        for v in sampler.order(epoch):
            levels[v // 2].add(v % 2)
    assert all(len(s) == 2 for s in levels.values())


def test_paired_puts_each_image_at_every_level_in_one_batch():
    sampler = ScheduleSampler("paired", 20, [0.5, 0.5], 4, seed=0)
    order = sampler.order(0)
    assert len(order) == len(sampler) == 40
    for batch in _batches(order, 4):
        images = Counter(v // 2 for v in batch)
        assert set(images.values()) == {2} and sorted(v % 2 for v in batch) == [0, 0, 1, 1]
    with pytest.raises(BioresConfigError, match="divisible"):
        ScheduleSampler("paired", 20, [0.5, 0.5], 5)


def test_dataset_holds_every_image_at_every_level_once_per_epoch():
    sampler = ScheduleSampler("dataset", 30, [0.5, 0.5], 4, seed=0)
    order = sampler.order(0)
    assert sorted(order) == list(range(60)) and order != list(range(60))


@pytest.mark.parametrize(
    "schedule, norm, message",
    [
        ("grouped", "token", "--mixed_schedule must be one of draw, dataset, balanced, paired"),
        ("draw", "sample", "--mixed_loss_normalization must be one of token, per_resolution"),
    ],
)
def test_bad_values_are_one_line_errors(schedule, norm, message):
    with pytest.raises(BioresConfigError) as info:
        check_schedule(schedule, norm)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_bad_schedule_flag_stops_biores_train_in_one_line(synth_small, tmp_path, capsys):
    from biores_plugin.train.trainer import main

    assert (
        main(["--data_path", f"synth:{synth_small}", "--output_dir", str(tmp_path / "x"), "--mixed_schedule", "sorted"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("biores-train: error: --mixed_schedule must be one of") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_per_resolution_normalisation_weighs_each_resolution_equally():
    ce = torch.tensor([[1.0, 1.0, 0.0], [3.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    weight = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    groups = torch.tensor([4, 4, 36])  # visual tokens: rows 0-1 at 64 px, row 2 at native
    assert normalized_loss(ce, weight, groups, "token").item() == pytest.approx((1 + 1 + 3 + 15) / 6)
    assert normalized_loss(ce, weight, groups, "per_resolution").item() == pytest.approx(((1 + 1 + 3) / 3 + 5) / 2)
    same = torch.tensor([4, 4, 4])
    assert normalized_loss(ce, weight, same, "per_resolution").item() == pytest.approx(
        normalized_loss(ce, weight, same, "token").item()
    )


def test_balanced_training_batches_hold_both_levels_in_equal_shares(synth_small, tmp_path):
    """A real biores-train run: the logged batches follow the schedule, the cost is counted."""
    from biores_plugin.train.trainer import train

    flags = [
        *TINY_SIGLIP,
        "--data_path",
        f"synth:{synth_small}",
        "--image_aspect_ratio",
        "native",
        "--merge_size",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--max_steps",
        "3",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--use_cpu",
        "true",
        "--mixed_resolution",
        "native:0.5,64:0.5",
        "--mixed_schedule",
        "balanced",
        "--mixed_loss_normalization",
        "per_resolution",
    ]
    stats = train([*flags, "--output_dir", str(tmp_path / "balanced")])
    draws = json.loads((tmp_path / "balanced" / "resolution_draws.json").read_text())
    assert draws["schedule"] == "balanced" and draws["counts"]["64"] == draws["counts"]["native"]
    batches = [json.loads(line) for line in (tmp_path / "balanced" / "batches.jsonl").read_text().splitlines()]
    assert len(batches) == 3
    for batch in batches:  # two images at each level in every batch of four
        assert sorted(Counter(draws["draws"][i] for i in batch["indices"]).values()) == [2, 2]
    assert stats["global_step"] == 3 and math.isfinite(stats["train_loss"])
    # the training cost counts the visual tokens of the samples the batches really held
    from biores_plugin.models.native_llava import BioresLlavaProcessor
    from biores_plugin.resolution import effective_size

    policy = BioresLlavaProcessor.from_pretrained(tmp_path / "balanced").policy
    size = 256  # synth_small (conftest)
    tokens = {level: policy.visual_tokens(*effective_size(size, size, level)) for level in set(draws["draws"])}
    assert tokens[64] < min(tokens.values()) * 2 < max(tokens.values())
    assert stats["visual_tokens_seen"] == sum(tokens[draws["draws"][i]] for b in batches for i in b["indices"])
