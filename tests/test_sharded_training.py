"""Sharded training, run: the shipped FSDP2 config through ``accelerate launch`` + transformers' Trainer on two CPU
processes (gloo). Each rank holds about half of each weight, the loss equals a one-process run with the same
samples per step, and the saved checkpoint is whole and loads with the stock ``from_pretrained``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fixtures_models
import pytest
import torch
from train_flags import CPU_RUN, offline_env

BIN = Path(sys.executable).parent
FSDP_CONFIG = Path(__file__).parents[1] / "biores_plugin" / "train" / "ds_configs" / "fsdp.yaml"


def _flags(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(model),
        "--data_path",
        f"synth:{data}",
        "--output_dir",
        str(out),
        "--image_aspect_ratio",
        "native",
        "--min_pixels",
        "3136",
        "--max_pixels",
        "50176",
        "--max_samples",
        "8",
        "--learning_rate",
        "5e-3",
        "--max_steps",
        "3",
        "--logging_steps",
        "1",
        *CPU_RUN,
        "--save_strategy",
        "no",
        *extra,
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def runs(synth_small, tmp_path_factory):
    from biores_plugin.train.trainer import train

    root = tmp_path_factory.mktemp("sharded")
    model = fixtures_models.build_qwen_vl(root, "qwen2_5_vl")
    sharded = root / "fsdp"
    cmd = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(FSDP_CONFIG),
        "--num_processes",
        "2",
        "--main_process_port",
        str(_free_port()),  # not the default 29500: other distributed runs may share the machine
        "-m",
        "biores_plugin.train.trainer",
        *_flags(model, synth_small, sharded, "--per_device_train_batch_size", "2"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=offline_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # one process, the same 4 samples per optimizer step as two accumulated micro-batches of 2
    single = train(
        _flags(
            model, synth_small, root / "one", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2"
        )
    )
    return model, sharded, json.loads((sharded / "biores_train_stats.json").read_text()), root / "one", single


def test_each_rank_holds_about_half_of_each_weight(runs):
    _, _, stats, _, _ = runs
    assert stats["distributed_type"] == "FSDP" and stats["fsdp"] is True and stats["world_size"] == 2
    shares = stats["weight_share_per_rank"]
    assert len(shares) == 2
    for rank in shares:
        assert 0.45 <= rank["share"] <= 0.55, shares
        assert rank["max_weight_share"] <= 0.55, shares  # no weight of 8+ rows is held whole by one rank
    assert abs(sum(rank["share"] for rank in shares) - 1.0) < 0.02


def test_loss_equals_one_process_run(runs):
    _, _, stats, _, single = runs
    assert stats["global_step"] == single["global_step"] == 3
    assert abs(stats["train_loss"] - single["train_loss"]) < 1e-4
    assert abs(stats["last_logged_loss"] - single["last_logged_loss"]) < 1e-4  # after two sharded AdamW steps
    assert abs(single["first_logged_loss"] - single["last_logged_loss"]) > 1e-3  # the steps did change the weights


def test_saved_checkpoint_is_whole_and_stock_loadable(runs):
    from safetensors.torch import load_file
    from transformers import Qwen2_5_VLForConditionalGeneration

    model, sharded, _, one, _ = runs
    _, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(sharded, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    saved, reference, start = (
        load_file(str(sharded / "model.safetensors")),
        load_file(str(one / "model.safetensors")),
        load_file(str(model / "model.safetensors")),
    )
    assert saved.keys() == reference.keys() == start.keys()
    assert all(saved[k].shape == start[k].shape for k in saved)  # whole tensors, not one rank's shards
    assert max(float((saved[k] - reference[k]).abs().max()) for k in saved) < 1e-4
    assert any(not torch.equal(saved[k], start[k]) for k in saved)


def test_fsdp_with_one_cpu_process_is_refused_in_one_line(synth_small, tmp_path):
    from biores_plugin.errors import BioresConfigError
    from biores_plugin.train.trainer import train

    with pytest.raises(BioresConfigError, match="FSDP on CPU needs several processes"):
        train(
            [
                "--data_path",
                f"synth:{synth_small}",
                "--output_dir",
                str(tmp_path),
                "--use_cpu",
                "true",
                "--fsdp",
                "full_shard",
            ]
        )


def test_fsdp1_on_cpu_is_refused_and_gpu_like_flags_pass(monkeypatch):
    from types import SimpleNamespace

    from biores_plugin.errors import BioresConfigError
    from biores_plugin.train.sharded import check_cpu_fsdp

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(BioresConfigError, match="FSDP2 only"):
        check_cpu_fsdp(SimpleNamespace(fsdp_plugin_args=None))
    monkeypatch.setenv("FSDP_VERSION", "2")
    check_cpu_fsdp(SimpleNamespace(fsdp_plugin_args=None))  # the shipped config's launch: accepted
    with pytest.raises(BioresConfigError, match="got 1"):
        check_cpu_fsdp(SimpleNamespace(fsdp_plugin_args={"fsdp_version": 1}))


def test_a_finished_rank_closes_its_process_group(tmp_path):
    """biores-train's ranks end with a barrier and destroy_process_group (a gloo group left to the interpreter's exit
    can abort a finished rank); nothing to close outside a distributed run."""
    script = tmp_path / "close.py"
    script.write_text(
        "import sys, torch.distributed as dist\n"
        "from biores_plugin.train.sharded import close_process_group\n"
        "rank = int(sys.argv[1])\n"
        f"dist.init_process_group('gloo', init_method='file://{tmp_path / 'store'}', rank=rank, world_size=2)\n"
        "closed = close_process_group()\n"
        "print(closed, dist.is_initialized(), close_process_group())\n"
    )
    procs = [
        subprocess.Popen([sys.executable, str(script), str(r)], stdout=subprocess.PIPE, text=True, env=offline_env())
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == [["True", "False", "False"]] * 2
