"""Padding-free Qwen2-VL / Qwen2.5-VL / Qwen3-VL batches: one row, the model's own 3-D rope positions per
sample, loss and every gradient equal to the padded batch (mixed resolutions in one batch)."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import fixtures_models
import pytest
import torch
from train_flags import CPU_RUN

PIXELS = ["--image_aspect_ratio", "native", "--min_pixels", "3136", "--max_pixels", "50176"]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwenpack")
    return {family: fixtures_models.build_qwen_vl(root, family) for family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")}


def _setup(folder: Path, synth: Path):
    from biores_plugin.train.args import (
        DataArguments,
        ModelArguments,
        TrainingArguments,
    )
    from biores_plugin.train.data import ResolutionDataset, load_records
    from biores_plugin.train.qwen_vl import QwenVLCollator, build_qwen_vl
    from biores_plugin.train.trainer import BioresTrainer

    data = DataArguments(data_path=f"synth:{synth}", image_aspect_ratio="native", min_pixels=3136, max_pixels=50176)
    model, processor = build_qwen_vl(ModelArguments(model_name_or_path=str(folder)), data)
    # native, 112 px and 56 px in one batch: 64, 16 and 4 image tokens (49/16/4 for Qwen3-VL's 16 px patches)
    dataset = ResolutionDataset(load_records(data.data_path)[:3], processor, [0, 112, 56], {"fine": 3.0})
    features = [dataset[i] for i in range(3)]
    collator = QwenVLCollator(processor.tokenizer.pad_token_id, model.config.image_token_id)
    model.config.text_config._attn_implementation = "sdpa"
    trainer = BioresTrainer(
        model=model, args=TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True)
    )
    return model, trainer, collator, features


def _loss_and_grads(trainer, model, batch):
    model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_packed_qwen_batch_equals_padded(qwen, synth_small, family):
    from biores_plugin.train.packing import enable_lm_packing
    from biores_plugin.train.qwen_packing import QwenPackingCollator

    model, trainer, collator, features = _setup(qwen[family], synth_small)
    assert len({f["visual_tokens"] for f in features}) == 3  # three resolutions in the batch
    padded = collator(features)
    assert float((padded["attention_mask"] == 0).float().mean()) > 0.1  # the padded batch does pad
    twin = copy.deepcopy(model)
    assert enable_lm_packing(twin) == "biores_varlen_lm"
    packed = QwenPackingCollator(collator, twin)(features)
    total = int(padded["attention_mask"].sum())
    assert packed["input_ids"].shape == (1, total) and "attention_mask" not in packed
    assert packed["position_ids"].shape == (4, 1, total)
    assert torch.equal(packed["image_grid_thw"], padded["image_grid_thw"])
    loss_a, grads_a = _loss_and_grads(trainer, model, padded)
    loss_b, grads_b = _loss_and_grads(trainer, twin, packed)
    assert abs(loss_a - loss_b) < 1e-5
    assert all(a is not None for a in grads_a)
    worst = max(float((a - b).abs().max()) for a, b in zip(grads_a, grads_b))
    assert worst < 1e-5, worst
    if family == "qwen2_5_vl":  # the same row with one text position run (no sample boundaries) is not the same
        joined = dict(packed)
        joined["position_ids"] = packed["position_ids"].clone()
        joined["position_ids"][0] = torch.arange(total)[None]
        assert abs(float(trainer.compute_loss(twin, joined).detach()) - loss_a) > 1e-4
        # transformers' own packed mask (block-diagonal through sdpa) agrees as well
        sdpa = copy.deepcopy(model)
        assert enable_lm_packing(sdpa, "sdpa") == "sdpa"
        assert abs(_loss_and_grads(trainer, sdpa, packed)[0] - loss_a) < 1e-5


def test_biores_train_packs_qwen_batches_with_the_padded_loss(qwen, synth_small, tmp_path):
    from biores_plugin.train.trainer import train

    def run(pack: str) -> tuple[dict, list[dict]]:
        out = tmp_path / f"pack_{pack}"
        stats = train(
            [
                "--model_name_or_path",
                str(qwen["qwen2_5_vl"]),
                "--data_path",
                f"synth:{synth_small}",
                "--output_dir",
                str(out),
                *PIXELS,
                "--mixed_resolution",
                "native:0.5,112:0.5",
                "--per_device_train_batch_size",
                "3",
                "--learning_rate",
                "0",
                "--max_steps",
                "2",
                "--logging_steps",
                "1",
                *CPU_RUN,
                "--save_strategy",
                "no",
                "--pack_sequences",
                pack,
            ]
        )
        return stats, [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines()]

    packed, packed_log = run("true")
    padded, padded_log = run("false")
    assert [b["indices"] for b in packed_log] == [b["indices"] for b in padded_log]
    assert all(b["rows"] == 1 and b["pad_tokens"] == 0 for b in packed_log)  # what the model was fed
    assert any(b["pad_tokens"] > 0 for b in padded_log) and all(b["rows"] == 3 for b in padded_log)
    assert abs(packed["train_loss"] - padded["train_loss"]) < 1e-5
