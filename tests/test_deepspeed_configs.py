"""The shipped DeepSpeed configs, validated by DeepSpeed's own ``DeepSpeedConfig`` after transformers fills their
``auto`` values (as the Trainer does at launch). DeepSpeed installs on CPU with ``DS_BUILD_OPS=0 pip install
deepspeed`` (no kernels are built); the multi-process DeepSpeed run itself needs GPUs (docs/training.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CONFIGS = Path(__file__).parents[1] / "biores_plugin" / "train" / "ds_configs"


def _deepspeed():
    if importlib.util.find_spec("deepspeed") is None:
        pytest.fail("deepspeed is not installed; install it with: DS_BUILD_OPS=0 pip install deepspeed", pytrace=False)
    from deepspeed.runtime.config import DeepSpeedConfig

    return DeepSpeedConfig


def _filled(name: str, tmp_path: Path) -> dict:
    from transformers.integrations.deepspeed import (
        HfTrainerDeepSpeedConfig,
        unset_hf_deepspeed_config,
    )

    from biores_plugin.train.args import TrainingArguments

    hf = HfTrainerDeepSpeedConfig(str(CONFIGS / f"{name}.json"))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to=[],
        use_cpu=True,
        bf16=True,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=3,
    )
    hf.trainer_config_process(args)
    config = dict(hf.config)
    unset_hf_deepspeed_config()  # the config object registers itself globally (ZeRO-3 init for later loads)
    return config


@pytest.mark.parametrize("name, stage", [("zero2", 2), ("zero3", 3)])
def test_shipped_configs_pass_deepspeeds_own_validation(name, stage, tmp_path):
    config_cls = _deepspeed()
    config = config_cls(_filled(name, tmp_path))
    assert config.zero_optimization_stage == stage
    assert (config.train_micro_batch_size_per_gpu, config.gradient_accumulation_steps) == (2, 3)
    assert config.bfloat16_config.enabled and not config.float16_config.enabled  # --bf16 filled the "auto"


def test_deepspeeds_validation_rejects_a_broken_config(tmp_path):
    from pydantic import ValidationError

    config_cls = _deepspeed()
    broken = _filled("zero3", tmp_path)
    broken["zero_optimization"] = {**broken["zero_optimization"], "stage": "three"}
    with pytest.raises(ValidationError, match="stage"):
        config_cls(broken)
