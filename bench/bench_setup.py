"""What the benches share: the repository and ``tests/`` on ``sys.path`` and the hub offline (on import),
the tiny native-resolution LLaVA they time, and the synthetic training records."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (ROOT, os.path.join(ROOT, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_name, "1")

#: Native resolution on a 16-pixel grid, 32 x 32 up to 1024 x 1024 pixels, one patch a token.
NATIVE_RESOLUTION = {
    "image_aspect_ratio": "native",
    "patch_size": 16,
    "merge_size": 1,
    "min_pixels": 32 * 32,
    "max_pixels": 1024 * 1024,
}


def tiny_native_llava(**sizes: Any) -> tuple[Any, Any]:
    """A random tiny LLaVA (vision width 64, seed 0) at :data:`NATIVE_RESOLUTION` over the synthetic vocabulary."""
    from biores_plugin.synth.generators import vocabulary
    from biores_plugin.tiny import build_tiny_llava

    words = vocabulary() + ["options", "answer", "with", "word", "one"]
    return build_tiny_llava(words, resolution=dict(NATIVE_RESOLUTION), vision_hidden=64, seed=0, **sizes)


def synth_records(cache: str | None, sizes: str, per_size: int) -> list[Any]:
    """Training records of ``per_size`` synthetic images at each of the comma-separated ``sizes`` (cached)."""
    from biores_plugin.synth.dataset import write_dataset
    from biores_plugin.train.data import load_records

    folder = Path(cache or Path(tempfile.gettempdir()) / "biores_bench_synth")
    records = []
    for size in sizes.split(","):
        root = write_dataset(
            folder / f"s{size}_n{per_size}", n_train=per_size, n_test=1, size=size, seed=0, progress=False
        )
        records += load_records(str(root))
    return records
