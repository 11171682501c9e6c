"""How ``biores demo`` runs on a shared machine: its thread default and one progress bar per stage.

Threads: the cores that are idle when the demo starts (cores minus the 1-minute load average,
at least 1); ``--threads`` or ``$BIORES_DEMO_THREADS`` override. On a quiet 2-core machine 2
threads ran ``biores demo --quick`` in 111 s against 158 s with 1 (before the tower batched images of one
size; 82-87 s with 2 threads after); on one shared with other jobs, 2
threads oversubscribe the cores (the tower pretraining at 22-25 s per step against 0.7 s with 1).
docs/demo.md, "Threads", has the conditions.

Progress: transformers' ``ProgressCallback`` prints every logged loss dict under its bar; during a
demo its bar is named after the run and shows the latest loss instead (a reversible patch, group
``"demo"``, removed when the demo ends; nothing changes for other trainers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import BioresConfigError

THREADS_ENV = "BIORES_DEMO_THREADS"
GROUP = "demo"


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """``$BIORES_DEMO_THREADS`` when set (a positive integer), else the idle cores: ``cores`` (those this
    process may run on) minus ``load`` (the 1-minute load average), rounded, at least 1."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise BioresConfigError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
        return int(value)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


@contextmanager
def stage_bars() -> Iterator[None]:
    """While a demo runs: each training run shows one named bar with its loss, no raw log dicts."""
    from transformers.trainer_callback import ProgressCallback

    from . import patching

    def on_train_begin(original: Any) -> Any:
        def hook(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            out = original(self, args, state, control, **kwargs)
            if getattr(self, "training_bar", None) is not None:
                self.training_bar.set_description(f"train {Path(args.output_dir).name}")
            return out

        return hook

    def on_log(original: Any) -> Any:
        def hook(self: Any, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            bar = getattr(self, "training_bar", None)
            if bar is not None and logs and "loss" in logs:
                bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)

        return hook

    patching.wrap(ProgressCallback, "on_train_begin", on_train_begin, group=GROUP)
    patching.wrap(ProgressCallback, "on_log", on_log, group=GROUP)
    try:
        yield
    finally:
        patching.revert(GROUP)
