"""biores demo's thread default and its one-bar-per-stage training progress."""

from __future__ import annotations

import io
import os
from types import SimpleNamespace

import pytest
from tqdm import tqdm

from biores_plugin.errors import BioresConfigError


def test_thread_default_uses_the_idle_cores_and_the_variable_overrides(monkeypatch):
    from biores_plugin.demo_runtime import THREADS_ENV, default_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert default_threads(cores=2, load=0.05) == 2  # a quiet 2-core machine: both cores
    assert default_threads(cores=2, load=1.0) == 1  # one core busy elsewhere
    assert default_threads(cores=2, load=7.5) == 1  # never below one
    assert default_threads(cores=16, load=3.2) == 13
    assert 1 <= default_threads() <= (os.cpu_count() or 1)
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads(cores=2, load=0.0) == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(BioresConfigError, match=THREADS_ENV):
            default_threads()


def test_training_bar_shows_the_loss_instead_of_printing_log_dicts(capsys):
    from transformers.trainer_callback import ProgressCallback, TrainerControl, TrainerState

    from biores_plugin import patching
    from biores_plugin.demo_runtime import GROUP, stage_bars

    args, state, control = SimpleNamespace(output_dir="/x/runs/native"), TrainerState(max_steps=3), TrainerControl()
    state.is_world_process_zero = True
    sink = io.StringIO()
    with stage_bars():
        callback = ProgressCallback()
        callback.training_bar = tqdm(total=3, file=sink)
        callback.on_log(args, state, control, logs={"loss": 1.23456, "learning_rate": 0.001})
        assert "loss=1.235" in str(callback.training_bar)
        assert "learning_rate" not in capsys.readouterr().out + sink.getvalue()  # no raw dict anywhere
        callback.training_bar.close()
    assert not patching.patches(GROUP) and not patching.is_wrapped(ProgressCallback, "on_log")
    plain = ProgressCallback()  # outside a demo: transformers' own behaviour, the dict is written
    plain.training_bar = tqdm(total=3, file=sink)
    plain.on_log(args, state, control, logs={"loss": 1.0, "learning_rate": 0.001})
    assert "learning_rate" in capsys.readouterr().out
