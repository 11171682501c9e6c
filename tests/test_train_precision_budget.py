"""``--torch_dtype`` (every model kind: tiny LLaVA, composed LLaVA, Qwen-VL) and ``--max_visual_tokens_per_batch``."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import fixtures_models
import pytest
import torch
from train_flags import CPU_RUN, TINY_SIGLIP

COMMON = [
    "--per_device_train_batch_size",
    "4",
    "--learning_rate",
    "1e-2",
    "--logging_steps",
    "1",
    *CPU_RUN,
    "--save_strategy",
    "no",
]
QWEN_PIXELS = ["--image_aspect_ratio", "native", "--min_pixels", "3136", "--max_pixels", "50176"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prec")
    return {
        "qwen2_5_vl": fixtures_models.build_qwen_vl(root, "qwen2_5_vl"),
        "lm": fixtures_models.build_lm(root, "qwen2"),
        "tower": fixtures_models.build_tower(root, "siglip"),
    }


def _kind_flags(kind: str, models: dict[str, Path]) -> list[str]:
    if kind == "qwen":
        return ["--model_name_or_path", str(models["qwen2_5_vl"]), *QWEN_PIXELS]
    if kind == "composed":
        return [
            "--model_name_or_path",
            str(models["lm"]),
            "--vision_tower",
            str(models["tower"]),
            "--version",
            "qwen_2",
        ]
    return [
        *TINY_SIGLIP,
        "--image_aspect_ratio",
        "native",
        "--merge_size",
        "2",
    ]


@pytest.mark.parametrize("kind", ["tiny", "composed", "qwen"])
def test_bfloat16_weights_train_and_are_saved(kind, models, synth_small, tmp_path):
    from safetensors.torch import load_file

    from biores_plugin.train.trainer import train

    out = tmp_path / kind
    stats = train(
        [
            *_kind_flags(kind, models),
            "--data_path",
            f"synth:{synth_small}",
            "--output_dir",
            str(out),
            *COMMON,
            "--max_steps",
            "2",
            "--torch_dtype",
            "bfloat16",
        ]
    )
    assert stats["torch_dtype"] == "bfloat16" and set(stats["parameter_dtypes"]) == {"bfloat16"}
    assert math.isfinite(stats["train_loss"])
    weights = load_file(str(out / "model.safetensors"))
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.bfloat16}


def test_float32_default_and_memory_estimate_follow_the_dtype(models):
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    from biores_plugin.train.args import ModelArguments
    from biores_plugin.train.checks import check_memory, meta_model

    config = AutoConfig.from_pretrained(models["qwen2_5_vl"])
    meta = meta_model(Qwen2_5_VLForConditionalGeneration, config)
    full = check_memory(meta, "q", ModelArguments(model_name_or_path="x"))
    half = check_memory(meta, "q", ModelArguments(model_name_or_path="x", torch_dtype="bfloat16"))
    n = sum(p.numel() for p in meta.parameters())
    assert full == 16 * n and half == 8 * n


def test_bad_dtype_is_one_line(synth_small, tmp_path):
    from biores_plugin.errors import BioresConfigError
    from biores_plugin.train.trainer import train

    with pytest.raises(BioresConfigError, match="--torch_dtype must be one of"):
        train(["--data_path", f"synth:{synth_small}", "--output_dir", str(tmp_path), "--torch_dtype", "fp8"])


def test_visual_token_budget_caps_every_forward(models, synth_small, tmp_path):
    from biores_plugin.train.trainer import train

    out = tmp_path / "budget"
    # native 256 px images are 64 tokens, 112 px ones 16: batch 4 would reach 256 tokens without the cap
    stats = train(
        [
            "--model_name_or_path",
            str(models["qwen2_5_vl"]),
            *QWEN_PIXELS,
            "--mixed_resolution",
            "native:0.5,112:0.5",
            "--data_path",
            f"synth:{synth_small}",
            "--output_dir",
            str(out),
            *COMMON,
            "--max_steps",
            "6",
            "--max_visual_tokens_per_batch",
            "100",
        ]
    )
    log = [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines()]
    assert len(log) == 6 and all(0 < b["image_tokens"] <= 100 for b in log)
    assert max(b["image_tokens"] for b in log) > 64  # two images did share a forward
    assert stats["samples_seen"] == sum(len(b["indices"]) for b in log) < 6 * 4


def test_an_image_over_the_budget_is_named_before_training(models, synth_small, tmp_path):
    from biores_plugin.errors import BioresConfigError
    from biores_plugin.train.trainer import train

    with pytest.raises(
        BioresConfigError, match=r"training sample \d+ .*256x256 px.* alone has 64 image tokens; lower --max_pixels"
    ):
        train(
            [
                "--model_name_or_path",
                str(models["qwen2_5_vl"]),
                *QWEN_PIXELS,
                "--data_path",
                f"synth:{synth_small}",
                "--output_dir",
                str(tmp_path / "x"),
                *COMMON,
                "--max_steps",
                "1",
                "--max_visual_tokens_per_batch",
                "50",
            ]
        )
    assert not (tmp_path / "x" / "batches.jsonl").exists()


def test_budget_sampler_keeps_the_order_and_ends_batches_early():
    from biores_plugin.train.budget import VisualTokenBudgetSampler
    from biores_plugin.train.data import TokenCountGroupedSampler

    tokens = [10, 80, 30, 30, 60, 5, 90, 20]
    base = TokenCountGroupedSampler([0] * len(tokens), 4, seed=3)
    sampler = VisualTokenBudgetSampler(base, tokens, 3, 100)
    batches = sampler.batches(0)
    assert [i for b in batches for i in b] == base.order(0)  # same samples, same order
    assert all(len(b) <= 3 and sum(tokens[i] for i in b) <= 100 for b in batches)
    assert all(sum(tokens[i] for i in b) + tokens[n[0]] > 100 or len(b) == 3 for b, n in itertools.pairwise(batches))
    assert sampler.samples_in(len(batches) + 1) == len(tokens) + len(sampler.batches(1)[0])
