"""``biores demo``'s configuration and its cache: a stage's marker (what it was made from) and the output lock."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BioresConfigError
from .io_utils import atomic_write_text

DONE = ".biores-stage.json"
#: Bump when the recipe changes so cached stages are not reused across recipes.
RECIPE = 7


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    generator: str = "striations"
    native: int = 192
    low: int = 64
    n_train: int = 5000
    n_test: int = 500
    steps: int = 800
    batch_size: int = 32
    learning_rate: float = 1.5e-3
    vision_lr: float = 1.5e-3
    fine_weight: float = 1.0
    scheduler: str = "cosine"
    warmup: float = 0.05
    init: str = "torch"
    placement: str = "before"
    encoder_generator: str = "puncta"
    encoder_n: int = 1500
    encoder_steps: int = 400
    encoder_lr: float = 2e-3
    mixed: str = "64:0.7,native:0.3"
    mixed_schedule: str = "balanced"
    mixed_steps: int = 1200  # as many 64 px images as the 64 px model sees, fewer visual tokens than native
    mixed_loss_normalization: str = "token"
    models: tuple[str, ...] = ("low", "native", "mixed")
    eval_resolutions: tuple[str, ...] = ("64", "128", "native")
    eval_batch_size: int = 64
    threads: int = 1  # the CLI passes demo_runtime.default_threads() (the idle cores)
    tiny: dict = field(
        default_factory=lambda: {
            "vision_hidden": 64,
            "vision_layers": 2,
            "text_hidden": 64,
            "text_layers": 2,
            "heads": 4,
            "num_channels": 1,
        }
    )

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        """A test-sized run: low vs native only, 800 training images, 100 steps, a 300-step tower."""
        return cls(
            seed=seed,
            native=192,
            n_train=800,
            n_test=100,
            steps=100,
            encoder_n=600,
            encoder_steps=300,
            models=("low", "native"),
            eval_resolutions=("64", "native"),
        )

    def train_spec(self, model: str) -> str:
        return {"low": f"{self.low}:1", "native": "native:1", "mixed": self.mixed}[model]

    def label(self, model: str) -> str:
        return {"low": str(self.low), "native": "native", "mixed": "mixed"}[model]


def _fingerprint(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stage:
    """A cached stage folder: complete when its marker matches the stage's parameters."""

    def __init__(self, folder: Path, params: dict[str, Any]):
        self.folder, self.params = folder, {**params, "recipe": RECIPE}
        self.key = _fingerprint(self.params)  # a new RECIPE invalidates every cached stage

    def done(self) -> bool:
        marker = self.folder / DONE
        if not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text()).get("key") == self.key
        except json.JSONDecodeError:
            return False

    def cached(self, log: Any, label: str) -> bool:
        """True (logged) when the stage is complete; otherwise start it afresh."""
        if self.done():
            log(f"{label}: cached ({self.folder})")
            return True
        self.reset()
        return False

    def reset(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)

    def finish(self, summary: dict[str, Any]) -> None:
        atomic_write_text(
            self.folder / DONE, json.dumps({"key": self.key, "params": self.params, **summary}, indent=2) + "\n"
        )

    def summary(self) -> dict[str, Any]:
        return json.loads((self.folder / DONE).read_text())


LOCK = ".biores-demo.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class OutputLock:
    """``--out``'s lock file, holding the pid of the demo that uses the folder.

    A second demo on the same folder stops with one line naming the holder; a lock left by a
    process that no longer runs is taken over.
    """

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = int(self.path.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    holder = None  # being written, or garbage: judge it by its age
                    if time.time() - self.path.stat().st_mtime < 5:
                        time.sleep(0.2)
                        continue
                if holder is not None and holder != os.getpid() and _alive(holder):
                    raise BioresConfigError(
                        f"{self.path.parent} is in use by another biores demo (pid {holder}, lock {self.path}); wait "
                        f"for it or pass another --out"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            return self
        raise BioresConfigError(f"could not take the lock {self.path}; remove it if no biores demo runs")

    def __exit__(self, *exc: Any) -> None:
        try:
            if int(self.path.read_text().split()[0]) == os.getpid():
                self.path.unlink()
        except (OSError, ValueError, IndexError):  # the lock file is gone or unreadable: nothing of ours to remove
            return
