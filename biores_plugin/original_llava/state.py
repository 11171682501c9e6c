"""What one ``biores_plugin.original_llava.train`` session decided, its JSON log, and the sample index.

:class:`NativeState` holds the resolved resolution config and the mixed-resolution draw; the
hooks read it through :func:`active_state`. The dataset hook publishes the index of the sample
being loaded in a context variable (:func:`sample_index`), so a draw depends on (seed, index) only.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biores_plugin.resolution import MixedResolution, NativePolicy, ResolutionConfig

__all__ = [
    "LOG_NAME",
    "LOG_PREFIX",
    "NativeState",
    "activate",
    "active_state",
    "config_extras",
    "current_sample_index",
    "log_event",
    "sample_index",
]

LOG_PREFIX = "[biores-llava] "
LOG_NAME = "biores_llava_log.jsonl"
_SAMPLE_INDEX: contextvars.ContextVar[int | None] = contextvars.ContextVar("biores_llava_sample_index", default=None)
_LOG_LOCK = threading.Lock()


@dataclass
class NativeState:
    """What the running ``biores_plugin.original_llava.train`` session decided (None outside native sessions)."""

    resolution: ResolutionConfig
    seed: int = 42
    log_path: Path | None = None
    step: int = 0
    mixed: MixedResolution | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Re-validate after a change (e.g. the tower's real patch size) and rebuild the mixed sampler."""
        self.resolution = self.resolution.resolved(self.resolution.patch_size or 14)
        self.mixed = self.resolution.mixed(self.seed) if self.resolution.mixed_resolution else None

    @property
    def policy(self) -> NativePolicy:
        return self.resolution.base_policy()

    def set_patch_size(self, patch_size: int) -> None:
        if int(patch_size) != self.resolution.patch_size:
            self.resolution = self.resolution.resolved(int(patch_size))
            self.refresh()


_STATE: NativeState | None = None
_CONFIG_EXTRAS: dict[str, Any] = {}


def activate(state: NativeState | None, config_extras: dict[str, Any] | None = None) -> NativeState | None:
    """Set the session state; ``config_extras`` are copied into ``model.config`` when it lacks them."""
    global _STATE
    _STATE = state
    _CONFIG_EXTRAS.clear()
    _CONFIG_EXTRAS.update({k: v for k, v in (config_extras or {}).items() if v is not None})
    return state


def active_state() -> NativeState | None:
    return _STATE


def config_extras() -> dict[str, Any]:
    return dict(_CONFIG_EXTRAS)


@contextmanager
def sample_index(index: Any) -> Iterator[None]:
    """Within the block, :func:`current_sample_index` is ``index`` (None for a non-int index)."""
    token = _SAMPLE_INDEX.set(int(index) if isinstance(index, int) else None)
    try:
        yield
    finally:
        _SAMPLE_INDEX.reset(token)


def current_sample_index() -> int | None:
    return _SAMPLE_INDEX.get()


def log_event(event: str, *, state: NativeState | None = None, **data: Any) -> dict[str, Any]:
    """One JSON line on stdout (prefixed) and in ``<output_dir>/biores_llava_log.jsonl``.

    ``state`` defaults to the active session; the dataset passes its own (dataloader workers started with
    ``spawn`` do not inherit the module global).
    """
    record = {"event": event, **data}
    line = json.dumps(record, sort_keys=True, default=str)
    with _LOG_LOCK:
        print(LOG_PREFIX + line, flush=True)
        state = state if state is not None else _STATE
        if state is not None and state.log_path is not None:
            state.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(state.log_path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
    return record
