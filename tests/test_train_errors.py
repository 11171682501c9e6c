"""biores-train refuses bad input in one line, before any weight is allocated; train_loss after a
resume covers the whole run."""

from __future__ import annotations

import json
from pathlib import Path

import fixtures_models
import pytest
import torch
from PIL import Image
from train_flags import CPU_RUN, TINY_CONFIG, TINY_SIGLIP

TINY = TINY_CONFIG


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("parts")
    folders = {
        "lm": fixtures_models.build_lm(root, "llama"),
        "tower": fixtures_models.build_tower(root, "clip"),
        "naflex": fixtures_models.build_tower(root, "siglip2_naflex"),
        "qwen": fixtures_models.build_qwen_vl(root, "qwen2_5_vl"),
    }
    bert = root / "resnet"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "resnet"}))
    folders["resnet"] = bert
    (root / "empty").mkdir()
    folders["empty"] = root / "empty"
    return folders


@pytest.fixture(scope="module")
def llava_json(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("json")
    for i in range(3):
        Image.new("RGB", (64, 48), (40 * i, 90, 160)).save(root / f"img{i}.png")
    good = [
        {
            "image": f"img{i}.png",
            "conversations": [{"from": "human", "value": "<image>\nhow many cells?"}, {"from": "gpt", "value": "two"}],
        }
        for i in range(3)
    ]
    (root / "good.json").write_text(json.dumps(good))
    return root / "good.json"


def _run(capsys, argv: list[str]) -> str:
    from biores_plugin.train.trainer import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("biores-train: error:") and err.count("\n") == 0 and "Traceback" not in err, err
    return err


def _base(data: str, out: Path, *extra: str) -> list[str]:
    return [
        "--data_path",
        data,
        "--output_dir",
        str(out),
        "--max_steps",
        "1",
        "--report_to",
        "none",
        "--use_cpu",
        "true",
        "--disable_tqdm",
        "true",
        "--save_strategy",
        "no",
        *extra,
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ([1, 2, 3], "entry 0 is a int, not a conversation object"),
        (["a", "b"], "entry 0 is a str, not a conversation object"),
        ([], "holds no training samples"),
        ({"image": "x"}, "must hold a list of conversations"),
    ],
)
def test_bad_data_json(tmp_path, capsys, content, message):
    data = tmp_path / "data.json"
    data.write_text(json.dumps(content))
    err = _run(capsys, _base(str(data), tmp_path / "out", "--tiny_config", TINY))
    assert message in err
    assert not (tmp_path / "out" / "model.safetensors").exists()  # never a saved untrained model


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1"),
        (
            ["--resume_from_checkpoint", "/no/such/checkpoint"],
            "--resume_from_checkpoint /no/such/checkpoint does not exist",
        ),
        (["--tiny_config", "[1, 2]"], "--tiny_config must be a JSON object"),
        (["--tiny_config", '{"text_hidden": -4}'], "text_hidden must be a positive integer"),
        (["--tiny_config", '{"text_hidden": "big"}'], "text_hidden must be a positive integer"),
        (["--tiny_config", '{"hidden": 32}'], "unknown key 'hidden'"),
        (["--tiny_config", '{"text_hidden": 30, "heads": 4}'], "must be divisible by heads"),
        (["--tiny_config", "{"], "--tiny_config is not valid JSON"),
        (["--deepspeed", "zero9"], "neither a shipped config (zero2, zero3) nor a JSON file"),
    ],
)
def test_bad_flags(tmp_path, capsys, llava_json, flags, message):
    err = _run(capsys, _base(str(llava_json), tmp_path / "out", *flags))
    assert message in err


def test_deepspeed_config_passes_through_or_names_the_package(tmp_path, llava_json):
    """The shipped ZeRO configs resolve by name; without deepspeed installed the error says so."""
    import importlib.util

    from biores_plugin.errors import BioresConfigError
    from biores_plugin.train.args import DS_CONFIGS, parse_args

    for name, stage in (("zero2", 2), ("zero3", 3)):
        config = json.loads((DS_CONFIGS / f"{name}.json").read_text())
        assert config["zero_optimization"]["stage"] == stage and config["train_micro_batch_size_per_gpu"] == "auto"
        argv = _base(str(llava_json), tmp_path / "o", "--deepspeed", name)
        if importlib.util.find_spec("deepspeed") is None:
            with pytest.raises(BioresConfigError, match="needs the deepspeed package"):
                parse_args(argv)
        else:
            assert parse_args(argv)[2].deepspeed == str(DS_CONFIGS / f"{name}.json")


def test_huge_tiny_config_refused_with_estimate(tmp_path, capsys, llava_json):
    err = _run(
        capsys,
        _base(
            str(llava_json),
            tmp_path / "out",
            "--tiny_config",
            '{"text_hidden": 16384, "text_layers": 96, "heads": 64, "vision_hidden": 128}',
        ),
    )
    assert "training needs about" in err and "GiB" in err and "available memory" in err and "M parameters" in err


@pytest.mark.parametrize(
    "which, extra, message",
    [
        (
            "resnet",
            [],
            "model_type 'resnet' is neither a LLaVA, a Qwen2-VL / Qwen2.5-VL checkpoint nor a causal language model",
        ),
        ("empty", [], "has no config.json"),
        ("tower", [], "model_type 'clip_vision_model' is neither"),
        ("lm", [], "is a language model: pass --vision_tower TOWER_FOLDER"),  # was: 23 GB, then killed
        ("lm", ["--vision_tower", "{lm}"], "expected a CLIP, SigLIP or SigLIP2 tower"),
        ("lm", ["--vision_tower", "{naflex}"], "SigLIP2 NaFlex"),
        (
            "lm",
            ["--vision_tower", "{tower}", "--version", "vicuna"],
            "--version must be one of plain, v1, llama_3, qwen_2, template",
        ),
        ("lm", ["--vision_tower", "{tower}", "--merge_size", "2"], "a composed LLaVA uses --merge_size 1"),
        (
            "lm",
            ["--vision_tower", "{tower}", "--pretrain_mm_mlp_adapter", "/no/mm_projector.bin"],
            "--pretrain_mm_mlp_adapter /no/mm_projector.bin does not exist",
        ),
        ("qwen", ["--vision_tower", "{tower}"], "--vision_tower does not apply to a Qwen2-VL family checkpoint"),
        ("qwen", ["--image_aspect_ratio", "pad"], "use --image_aspect_ratio native"),
    ],
)
def test_wrong_model_folders(tmp_path, capsys, parts, llava_json, which, extra, message):
    extra = [e.format(**{k: str(v) for k, v in parts.items()}) for e in extra]
    err = _run(capsys, _base(str(llava_json), tmp_path / "out", "--model_name_or_path", str(parts[which]), *extra))
    assert message in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_image_error_in_dataloader_worker_is_one_line(tmp_path, capsys, llava_json):
    """A file whose header reads but whose pixels do not: it fails in a DataLoader worker."""
    root = tmp_path / "imgs"
    root.mkdir()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(root / "ok.png")
    import numpy as np

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "bad.png")
    blob = (root / "bad.png").read_bytes()
    (root / "bad.png").write_bytes(blob[: len(blob) // 2])  # truncated: header intact
    convo = [{"from": "human", "value": "<image>\nhow many?"}, {"from": "gpt", "value": "two"}]
    (root / "data.json").write_text(
        json.dumps([{"image": "ok.png", "conversations": convo}, {"image": "bad.png", "conversations": convo}])
    )
    err = _run(
        capsys,
        _base(
            str(root / "data.json"),
            tmp_path / "out",
            "--tiny_config",
            TINY,
            "--per_device_train_batch_size",
            "2",
            "--dataloader_num_workers",
            "1",
        ),
    )
    assert "training sample 1" in err and "bad.png" in err


def test_train_loss_after_resume_covers_the_whole_run(tmp_path, synth_small):
    from biores_plugin.train.trainer import train

    def flags(out: Path, *extra: str) -> list[str]:
        return [
            *TINY_SIGLIP,
            "--data_path",
            f"synth:{synth_small}",
            "--merge_size",
            "2",
            "--output_dir",
            str(out),
            "--per_device_train_batch_size",
            "4",
            "--learning_rate",
            "3e-3",
            "--logging_steps",
            "1",
            *CPU_RUN,
            "--max_steps",
            "6",
            *extra,
        ]

    whole = train(flags(tmp_path / "whole", "--save_strategy", "no"))
    train(flags(tmp_path / "first", "--save_strategy", "steps", "--save_steps", "3"))
    resumed = train(
        flags(
            tmp_path / "first",
            "--save_strategy",
            "steps",
            "--save_steps",
            "3",
            "--resume_from_checkpoint",
            str(tmp_path / "first" / "checkpoint-3"),
        )
    )
    assert resumed["global_step"] == 6 and resumed["resumed_from"].endswith("checkpoint-3")
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-3)
    log = json.loads((tmp_path / "first" / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
    late = [h["loss"] for h in log if "loss" in h and h["step"] > 3]
    assert resumed["segment_train_loss"] == pytest.approx(sum(late) / len(late), rel=1e-3)
    assert abs(resumed["train_loss"] - resumed["segment_train_loss"]) > 1e-4  # the two differ: the fix is visible


def test_memory_estimate_counts_trained_weights_only():
    from types import SimpleNamespace

    from biores_plugin.models.native_llava import BioresLlavaForConditionalGeneration
    from biores_plugin.tiny import tiny_llava_config
    from biores_plugin.train.checks import check_memory, meta_model

    model = meta_model(BioresLlavaForConditionalGeneration, tiny_llava_config(500))
    total = sum(p.numel() for p in model.parameters())
    projector = sum(p.numel() for n, p in model.named_parameters() if "multi_modal_projector" in n)
    tower = sum(p.numel() for n, p in model.named_parameters() if "vision_tower" in n)
    full = SimpleNamespace(tune_mm_mlp_adapter=False, freeze_vision_tower=False)
    args = SimpleNamespace(deepspeed=None, fsdp=None, lora_enable=False)
    assert check_memory(model, "m", full, args) == 16 * total
    assert check_memory(model, "m", SimpleNamespace(tune_mm_mlp_adapter=True), args) == 4 * total + 12 * projector
    assert (
        check_memory(model, "m", SimpleNamespace(tune_mm_mlp_adapter=False, freeze_vision_tower=True), args)
        == 16 * total - 12 * tower
    )
    assert (
        check_memory(model, "m", full, SimpleNamespace(deepspeed="zero3.json", fsdp=None, lora_enable=False)) == 0
    )  # sharded: not estimated


def test_resume_weights_load_in_either_layout_and_refuse_mismatches(tmp_path):
    """HF Trainer's own resume loads the legacy layout ``save_pretrained`` writes with every weight
    missing (a random model, silently); biores renames it, and refuses what does not fit."""
    from safetensors.torch import save_file

    from biores_plugin.errors import BioresConfigError
    from biores_plugin.train.checkpoints import load_checkpoint_weights

    class Inner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.language_model = torch.nn.Linear(2, 2, bias=False)

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.lm_head = Inner(), torch.nn.Linear(2, 2, bias=False)

    model = Outer()
    weights = {
        "language_model.model.weight": torch.full((2, 2), 3.0),
        "language_model.lm_head.weight": torch.full((2, 2), 5.0),
    }
    save_file(weights, str(tmp_path / "model.safetensors"))
    load_checkpoint_weights(model, tmp_path / "model.safetensors")
    assert float(model.model.language_model.weight[0, 0]) == 3.0 and float(model.lm_head.weight[0, 0]) == 5.0
    save_file({**weights, "stray.weight": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(BioresConfigError, match="1 unexpected keys") as info:
        load_checkpoint_weights(Outer(), tmp_path / "model.safetensors")
    assert "\n" not in str(info.value)
