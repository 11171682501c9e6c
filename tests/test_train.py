"""biores-train: native and mixed training, flag validation, kill-and-resume, DDP on CPU."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_flags import CPU_RUN, TINY_SIGLIP, offline_env

BIN = Path(sys.executable).parent
STEPS, EVERY = 40, 5  # kill-and-resume run: steps, save interval


def _flags(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        *TINY_SIGLIP,
        "--data_path",
        f"synth:{data}",
        "--image_aspect_ratio",
        "native",
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
        *extra,
    ]


def test_native_and_mixed_training_in_process(synth_small, tmp_path):
    from biores_plugin.train.trainer import train

    stats = train(
        _flags(synth_small, tmp_path / "native", "--max_steps", "12", "--save_strategy", "no", "--max_samples", "8")
    )
    assert stats["global_step"] == 12
    assert stats["last_logged_loss"] < stats["first_logged_loss"]  # it learns (overfits 8 samples)
    config = json.loads((tmp_path / "native" / "biores_config.json").read_text())
    assert config["image_aspect_ratio"] == "native" and config["merge_size"] == 2
    assert json.loads((tmp_path / "native" / "config.json").read_text())["biores"]["train_resolution_label"] == "native"

    mixed = train(
        _flags(
            synth_small,
            tmp_path / "mixed",
            "--max_steps",
            "4",
            "--save_strategy",
            "no",
            "--mixed_resolution",
            "native:0.5,64:0.5",
            "--no_group_by_token_count",
        )
    )
    assert mixed["global_step"] == 4 and math.isfinite(mixed["train_loss"])
    draws = json.loads((tmp_path / "mixed" / "resolution_draws.json").read_text())
    assert set(draws["counts"]) == {"native", "64"}
    batches = [json.loads(line) for line in (tmp_path / "mixed" / "batches.jsonl").read_text().splitlines()]
    mixed_sizes = [len({draws["draws"][i] for i in b["indices"]}) for b in batches]
    assert max(mixed_sizes) == 2  # images of different sizes met in one batch
    # same seed -> same draws (reproducible), different seed -> different
    from biores_plugin.resolution import MixedResolution

    assert MixedResolution("native:0.5,64:0.5", 0).draws(len(draws["draws"])) == draws["draws"]
    assert MixedResolution("native:0.5,64:0.5", 1).draws(len(draws["draws"])) != draws["draws"]
    assert mixed["visual_tokens_seen"] < 4 * 4 * 64  # cheaper than all-native (64 tokens / image)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--image_aspect_ratio", "hires"], "unknown image_aspect_ratio"),
        (["--mixed_resolution", "native:0.5,224:0.4"], "sum to"),
        (["--mixed_resolution", "native"], "RES:PROB"),
        (["--min_pixels", "5000", "--max_pixels", "1000"], "larger than --max_pixels"),
        (["--image_aspect_ratio", "pad", "--min_pixels", "100"], "only to --image_aspect_ratio native"),
        (["--no_such_flag", "1"], "unknown flag"),
        (["--vision_tower", "/no/such/tower"], "--vision_tower must be one of siglip, clip or a folder"),
    ],
)
def test_bad_flags_fail_fast_with_one_line(tmp_path, synth_small, flags, message):
    proc = subprocess.run(
        [str(BIN / "biores-train"), *_flags(synth_small, tmp_path / "x", "--max_steps", "1"), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        env=offline_env(),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "x" / "config.json").exists()  # failed before any model was built


def test_sigkill_then_resume_keeps_steps_and_data_order(synth_small, tmp_path):
    out = tmp_path / "run"
    args = [
        str(BIN / "biores-train"),
        *_flags(synth_small, out, "--max_steps", str(STEPS), "--save_strategy", "steps", "--save_steps", str(EVERY)),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=offline_env())
    deadline = time.time() + 240
    while time.time() < deadline and not (out / f"checkpoint-{2 * EVERY}" / "trainer_state.json").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "biores_train_stats.json").exists(), "the run finished before the kill"
    assert (out / f"checkpoint-{2 * EVERY}").is_dir(), "no checkpoint before the kill"
    killed_log = [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines() if line.strip()]
    resumed = subprocess.run(
        [*args, "--resume_from_checkpoint", "last"], capture_output=True, text=True, timeout=300, env=offline_env()
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stats = json.loads((out / "biores_train_stats.json").read_text())
    log = [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines() if line.strip()]
    assert stats["global_step"] == STEPS, ([e["step"] for e in log], stats)
    assert stats["resumed_from"] and "checkpoint-" in stats["resumed_from"]
    # the order every step saw equals the deterministic sampler order, before and after the kill

    reference = uninterrupted_order(synth_small, tmp_path)
    by_step: dict[int, list[int]] = {}
    for entry in log:
        by_step[entry["step"]] = entry["indices"]  # a step redone after resume overwrites: same batch
    assert sorted(by_step) == list(range(STEPS))
    assert [by_step[s] for s in range(STEPS)] == reference
    redone = len(log) - STEPS
    assert redone <= EVERY  # at most one save interval of work lost
    assert killed_log and killed_log[0]["indices"] == reference[0]
    # resuming a finished run does not train further (transformers alone would add a step)
    again = subprocess.run(
        [*args, "--resume_from_checkpoint", "last"], capture_output=True, text=True, timeout=300, env=offline_env()
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "biores_train_stats.json").read_text())["global_step"] == STEPS
    assert len((out / "batches.jsonl").read_text().splitlines()) == len(log)


def uninterrupted_order(data: Path, tmp_path: Path) -> list[list[int]]:
    """The batches an uninterrupted 8-step run consumes (same flags, same seed)."""
    from biores_plugin.train.trainer import train

    out = tmp_path / "reference"
    train(_flags(data, out, "--max_steps", str(STEPS), "--save_strategy", "no"))
    return [json.loads(line)["indices"] for line in (out / "batches.jsonl").read_text().splitlines() if line.strip()]


def test_accelerate_two_processes_on_cpu(synth_small, tmp_path):
    """Two DDP processes on CPU (gloo). accelerate 1.x runs a single process under ``--cpu``,
    so the launch uses its multi-process launcher; biores-train picks gloo without CUDA."""
    out = tmp_path / "ddp"
    flags = _flags(synth_small, out, "--max_steps", "2", "--save_strategy", "no")
    flags[flags.index("--use_cpu") : flags.index("--use_cpu") + 2] = []
    cmd = [
        str(BIN / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "biores_plugin.train.trainer",
        *flags,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=offline_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    stats = json.loads((out / "biores_train_stats.json").read_text())
    assert stats["global_step"] == 2
    assert stats["samples_seen"] == 2 * 4 * 2  # two processes, batch 4 each


def test_pretrained_vision_tower_feeds_biores_train(synth_small, tmp_path):
    """biores-pretrain-vision -> saved tower -> biores-train --vision_tower FOLDER starts from it."""
    import torch
    from safetensors.torch import load_file

    from biores_plugin.models.native_llava import BioresLlavaForConditionalGeneration
    from biores_plugin.train.pretrain_vision import STATS, pretrain
    from biores_plugin.train.trainer import train

    tower = tmp_path / "tower"
    stats = pretrain(
        [
            "--data_path",
            f"synth:{synth_small}",
            "--output_dir",
            str(tower),
            "--max_steps",
            "30",
            "--learning_rate",
            "3e-3",
            "--per_device_train_batch_size",
            "8",
            "--disable_tqdm",
            "--warmup_steps",
            "1",
            "--tiny_config",
            '{"vision_hidden": 32, "heads": 2, "num_channels": 1, "image_size": 128}',
        ]
    )
    assert set(stats["test_accuracy"]) == {"coarse", "fine"}  # one head per question type, scored on the test split
    assert stats["final_loss"] < stats["first_loss"]  # it learns (24 training images)
    assert json.loads((tower / STATS).read_text())["steps"] == 30 and not (tmp_path / "tower.partial").exists()
    saved = load_file(str(tower / "model.safetensors"))

    run = tmp_path / "llava"
    train(
        _flags(
            synth_small,
            run,
            "--vision_tower",
            str(tower),
            "--max_steps",
            "2",
            "--save_strategy",
            "no",
            "--freeze_vision_tower",
            "true",
        )
    )
    model = BioresLlavaForConditionalGeneration.from_pretrained(run)
    assert model.config.vision_config.num_channels == 1 and model.config.vision_config.hidden_size == 32
    state = model.model.vision_tower.state_dict()
    assert all(torch.equal(state[name], value) for name, value in saved.items())  # frozen: exactly the pretrained tower


def test_tiny_tower_position_table_is_small():
    """PyTorch's N(0, 1) position table swamps the patch embedding; the tiny init uses 1/sqrt(width)."""
    from biores_plugin.train.args import DataArguments, ModelArguments
    from biores_plugin.train.data import Record
    from biores_plugin.train.trainer import build_model_and_processor

    records = [Record(None, [("how many cells are there?", "two", "coarse")], (64, 64))]
    model, _ = build_model_and_processor(
        ModelArguments(vision_tower="siglip", tiny_config='{"vision_hidden": 64}'),
        DataArguments(data_path="x"),
        records,
        0,
    )
    table = model.model.vision_tower.embeddings.position_embedding.weight
    assert abs(float(table.detach().std()) - 64**-0.5) < 0.02


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data_path", "/no/such/data"], "does not exist"),
        (["--tiny_config", "{"], "--tiny_config is not JSON"),
        (["--max_steps", "0"], "must be positive"),
        (["--mixed_resolution", "native"], "RES:PROB"),
        (["--no_such_flag", "1"], "unrecognized arguments"),
    ],
)
def test_pretrain_vision_bad_input_gets_one_line(tmp_path, capsys, flags, message):
    from biores_plugin.train.pretrain_vision import main

    base = ["--data_path", str(tmp_path), "--output_dir", str(tmp_path / "tower")]
    assert main([*base, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and err.startswith("biores-pretrain-vision: error:")
    assert not (tmp_path / "tower").exists()
