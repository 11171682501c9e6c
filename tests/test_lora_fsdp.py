"""LoRA with LLaVA's flags (merged and adapter-only saves) and the gradient-checkpointing / bf16 flags reaching
the model (sharded training: tests/test_sharded_training.py)."""

from __future__ import annotations

import json
from pathlib import Path

import fixtures_models
import pytest
import torch
from test_compose import current_layout


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lora")
    return {
        "lm": fixtures_models.build_lm(root, "llama"),
        "tower": fixtures_models.build_tower(root, "siglip"),
        "qwen": fixtures_models.build_qwen_vl(root, "qwen2_5_vl"),
    }


def _common(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data_path",
        f"synth:{data}",
        "--output_dir",
        str(out),
        "--image_aspect_ratio",
        "native",
        "--max_pixels",
        "40000",
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "5e-3",
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--seed",
        "0",
        "--save_strategy",
        "no",
        *extra,
    ]


def test_lora_merged_is_a_stock_llava_with_changed_lm(parts, synth_small, tmp_path):
    from safetensors.torch import load_file
    from transformers import LlavaForConditionalGeneration

    from biores_plugin.train.trainer import train

    out = tmp_path / "merged"
    stats = train(
        [
            "--model_name_or_path",
            str(parts["lm"]),
            "--vision_tower",
            str(parts["tower"]),
            "--version",
            "v1",
            "--lora_enable",
            "True",
            "--lora_r",
            "4",
            "--lora_alpha",
            "8",
            "--lora_dropout",
            "0.0",
            "--max_steps",
            "3",
            "--use_cpu",
            "true",
            *_common(synth_small, out),
        ]
    )
    base = load_file(str(parts["lm"] / "model.safetensors"))
    projector = sum(
        p.numel()
        for n, p in LlavaForConditionalGeneration.from_pretrained(out).named_parameters()
        if "multi_modal_projector" in n
    )
    assert (
        projector < stats["trainable_parameters"] < sum(v.numel() for v in base.values()) // 4
    )  # adapters + projector only
    assert not (out / "adapter_config.json").exists()  # merged: a plain checkpoint
    model, info = LlavaForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    saved = current_layout(load_file(str(out / "model.safetensors")))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(saved[q.replace("model.", "model.language_model.", 1)], base[q])  # the adapter was merged in
    emb = "model.embed_tokens.weight"
    assert torch.equal(
        saved[emb.replace("model.", "model.language_model.", 1)], base[emb]
    )  # non-adapted weights untouched


def test_lora_adapter_only_on_qwen2_5_vl(parts, synth_small, tmp_path):
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    from biores_plugin.train.trainer import train

    out = tmp_path / "adapter"
    train(
        [
            "--model_name_or_path",
            str(parts["qwen"]),
            "--lora_enable",
            "True",
            "--lora_r",
            "4",
            "--lora_save",
            "adapter",
            "--max_steps",
            "2",
            "--use_cpu",
            "true",
            *_common(synth_small, out),
        ]
    )
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 4 and not any("visual" in t for t in config["target_modules"])
    extra = torch.load(out / "non_lora_trainables.bin", weights_only=True)
    assert extra and all(".merger." in k for k in extra)  # LLaVA's file name, the projector (Qwen's merger)
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(parts["qwen"])
    tuned = PeftModel.from_pretrained(base, out)
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in tuned.named_parameters())


def test_lora_flags_checked(parts, synth_small, tmp_path, capsys):
    from biores_plugin.train.trainer import main

    assert (
        main(
            [
                "--model_name_or_path",
                str(parts["qwen"]),
                "--lora_enable",
                "True",
                "--lora_save",
                "both",
                "--max_steps",
                "1",
                "--use_cpu",
                "true",
                *_common(synth_small, tmp_path / "x"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "--lora_save must be one of merged, adapter" in err and err.count("\n") == 0


def test_gradient_checkpointing_and_bf16_reach_the_model(parts, synth_small, tmp_path):
    import torch

    from biores_plugin.train.trainer import train

    dtypes: set = set()  # what the model's linear layers really computed in (every module, via torch's global hook)

    def record(module, _inputs, output):
        if isinstance(module, torch.nn.Linear) and isinstance(output, torch.Tensor):
            dtypes.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        stats = train(
            [
                "--model_name_or_path",
                str(parts["lm"]),
                "--vision_tower",
                str(parts["tower"]),
                "--version",
                "v1",
                "--max_steps",
                "1",
                "--gradient_checkpointing",
                "True",
                "--bf16",
                "True",
                "--use_cpu",
                "true",
                *_common(synth_small, tmp_path / "gc"),
            ]
        )
    finally:
        handle.remove()
    assert stats["gradient_checkpointing"] is True and stats["global_step"] == 1
    assert torch.bfloat16 in dtypes, dtypes  # bf16 reached the forward pass, not only the flag
