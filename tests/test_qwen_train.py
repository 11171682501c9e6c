"""The Qwen2-VL family through biores-train: mixed resolution, answer-only labels, loss weights,
resume, draws log; the result evaluated by lmms-eval's own qwen2_5_vl wrapper."""

from __future__ import annotations

import json
import math
from pathlib import Path

import fixtures_models
import pytest
from conftest import run_lmms_eval
from train_flags import CPU_RUN

PIXELS = ["--image_aspect_ratio", "native", "--min_pixels", "3136", "--max_pixels", "50176"]


def _flags(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(model),
        "--data_path",
        f"synth:{data}",
        "--output_dir",
        str(out),
        *PIXELS,
        "--per_device_train_batch_size",
        "4",
        "--learning_rate",
        "2e-3",
        "--logging_steps",
        "1",
        *CPU_RUN,
        *extra,
    ]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwen")
    return {family: fixtures_models.build_qwen_vl(root, family) for family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")}


@pytest.fixture(scope="module")
def mixed_run(qwen, synth_small, tmp_path_factory):
    from biores_plugin.train.trainer import train

    out = tmp_path_factory.mktemp("q25") / "run"
    stats = train(
        _flags(
            qwen["qwen2_5_vl"],
            synth_small,
            out,
            "--mixed_resolution",
            "native:0.5,112:0.5",
            "--answer_loss_weights",
            "fine=3",
            "--max_steps",
            "6",
            "--save_strategy",
            "no",
            "--no_group_by_token_count",
        )
    )
    return out, stats


def test_mixed_resolution_run_saves_a_stock_qwen2_5_vl(mixed_run):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    out, stats = mixed_run
    assert stats["global_step"] == 6 and math.isfinite(stats["train_loss"])
    draws = json.loads((out / "resolution_draws.json").read_text())
    assert set(draws["counts"]) == {"native", "112"}
    sizes = [
        len({draws["draws"][i] for i in json.loads(line)["indices"]})
        for line in (out / "batches.jsonl").read_text().splitlines()
    ]
    assert max(sizes) == 2  # both resolutions met in one batch
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    processor = AutoProcessor.from_pretrained(out)
    assert processor.image_processor.size == {"shortest_edge": 3136, "longest_edge": 50176}  # the training pixel range
    assert json.loads((out / "biores_config.json").read_text())["max_pixels"] == 50176


def test_labels_cover_answers_only_and_weights_apply(qwen, synth_small):
    from biores_plugin.train.args import DataArguments, ModelArguments
    from biores_plugin.train.data import ResolutionDataset, load_records
    from biores_plugin.train.qwen_vl import build_qwen_vl

    data = DataArguments(
        data_path=f"synth:{synth_small}", image_aspect_ratio="native", min_pixels=3136, max_pixels=50176
    )
    model, processor = build_qwen_vl(ModelArguments(model_name_or_path=str(qwen["qwen2_5_vl"])), data)
    records = load_records(data.data_path)[:2]
    item = ResolutionDataset(records, processor, [0, 0], {"fine": 3.0})[0]
    tok = processor.tokenizer
    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    ids, labels, weights = item["input_ids"], item["labels"], item["loss_weights"]
    assert int((ids == pad).sum()) == item["visual_tokens"] > 0
    assert bool((labels[ids == pad] == -100).all())  # image and prompt tokens never supervised
    supervised = tok.decode(labels[labels != -100])
    for _, answer, _ in records[0].turns:
        assert answer in supervised
    assert "how" not in supervised.lower() and "<|im_start|>" not in supervised
    kinds = {kind for _, _, kind in records[0].turns}
    assert ("fine" in kinds) == bool((weights == 3.0).any())
    # the prompt is what lmms-eval's qwen2_5_vl renders: its system prompt, image first
    assert tok.decode(ids).startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|>"
    )


def test_qwen2_5_vl_output_evaluated_by_lmms_eval(mixed_run, synth_small):
    out, _ = mixed_run
    lmms = out.parent / "lmms" / "out"
    lmms.parent.mkdir()
    results = run_lmms_eval(
        [
            "--model",
            "qwen2_5_vl",
            "--model_args",
            f"pretrained={out},device=cpu,device_map=cpu,min_pixels=3136,max_pixels=50176",
            "--tasks",
            "biores_synth_224,biores_synth_native",
            "--limit",
            "3",
        ],
        lmms,
        env={"BIORES_SYNTH_PATH": str(synth_small)},
    )
    for task in ("biores_synth_224", "biores_synth_native"):
        assert results["n-samples"][task]["effective"] == 3


def test_qwen2_vl_resume_continues_to_the_same_step(qwen, synth_small, tmp_path):
    from transformers import Qwen2VLForConditionalGeneration

    from biores_plugin.train.trainer import train

    out = tmp_path / "q2"
    first = train(
        _flags(qwen["qwen2_vl"], synth_small, out, "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2")
    )
    assert first["global_step"] == 2 and (out / "checkpoint-2" / "trainer_state.json").is_file()
    resumed = train(
        _flags(
            qwen["qwen2_vl"],
            synth_small,
            out,
            "--max_steps",
            "4",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
            "--resume_from_checkpoint",
            "last",
        )
    )
    assert resumed["global_step"] == 4 and resumed["resumed_from"].endswith("checkpoint-2")
    log = [json.loads(line)["step"] for line in (out / "batches.jsonl").read_text().splitlines()]
    assert log == [0, 1, 2, 3]  # no step redone, none skipped
    _, info = Qwen2VLForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_qwen3_vl_and_frozen_tower(qwen, synth_small, tmp_path):
    import torch
    from safetensors.torch import load_file

    from biores_plugin.train.trainer import train

    stats = train(
        _flags(
            qwen["qwen3_vl"],
            synth_small,
            tmp_path / "q3",
            "--max_steps",
            "2",
            "--save_strategy",
            "no",
            "--freeze_vision_tower",
            "true",
        )
    )
    assert stats["global_step"] == 2
    before, after = (
        load_file(str(qwen["qwen3_vl"] / "model.safetensors")),
        load_file(str(tmp_path / "q3" / "model.safetensors")),
    )
    tower = [k for k in before if ".visual." in f".{k}" and ".merger." not in k]
    assert tower and all(torch.equal(before[k], after[k]) for k in tower)
    assert any(not torch.equal(before[k], after[k]) for k in before if ".merger." in k)
