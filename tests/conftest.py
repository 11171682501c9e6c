"""Shared test set-up: everything offline, small thread counts, shared fixtures."""

from __future__ import annotations

import os

# Nothing may reach the hub at run time; set before transformers/datasets are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

# Tests write only under temporary folders: biores' cache (~/.cache/biores: generated task folders,
# the default synthetic set), the hub / datasets caches and matplotlib's go to one folder per session,
# set before datasets / huggingface_hub read them at import. Subprocesses inherit it.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_CACHE = tempfile.mkdtemp(prefix="biores-tests-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
for _name, _sub in (
    ("XDG_CACHE_HOME", "xdg"),
    ("HF_HOME", "hf"),
    ("LMMS_EVAL_DATASETS_CACHE", "lmms_eval_datasets"),
    ("MPLCONFIGDIR", "matplotlib"),
):
    os.environ[_name] = os.path.join(_CACHE, _sub)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------- shared tiny world

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

PROMPT_WORDS = ["options", "answer", "with", "word", "one"]


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """A small synthetic benchmark (all generators, 256 px) shared by the whole session."""
    from biores_plugin.synth.dataset import write_dataset

    root = tmp_path_factory.mktemp("synth") / "data"
    write_dataset(root, n_train=8, n_test=8, size=256, seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random tiny native-resolution LLaVA (SigLIP tower, 2x2 merge) saved like a real one."""
    from biores_plugin.synth.generators import vocabulary
    from biores_plugin.tiny import build_tiny_llava

    path = tmp_path_factory.mktemp("ckpt") / "tiny-llava"
    model, processor = build_tiny_llava(vocabulary() + PROMPT_WORDS)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def lmms_model_args(tiny_checkpoint) -> tuple[str, str]:
    """``(--model, --model_args)`` of a real lmms-eval model entry on a tiny local checkpoint."""
    return "biores_llava", f"pretrained={tiny_checkpoint},device=cpu,batch_size=4"


def run_lmms_eval(args: list[str], output: Path, env: dict | None = None, timeout: int = 600) -> dict:
    """Run the real lmms-eval CLI once (a subprocess, as a user would) and return its results.

    lmms-eval exits 0 even when a run fails unless --verbosity DEBUG, so that is always set and
    the results file is required.
    """
    import os

    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "2", **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "lmms_eval",
        *args,
        "--output_path",
        str(output),
        "--log_samples",
        "--verbosity",
        "DEBUG",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=output.parent)
    (output.parent / "lmms_eval.log").write_text(proc.stdout + proc.stderr)
    results = sorted(output.glob("**/*_results.json"))
    assert proc.returncode == 0 and results, (
        f"lmms-eval failed (rc={proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}"
    )
    return json.loads(results[-1].read_text())


# Property tests: random locally (to find new cases), reproducible in CI.
from hypothesis import settings as _hyp_settings  # noqa: E402

_hyp_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    _hyp_settings.load_profile("ci")


# --------------------------------------------------------------------------- stock HF architectures


@pytest.fixture(scope="session")
def stock_checkpoint(tmp_path_factory):
    """``stock_checkpoint(name)`` -> folder of a tiny random stock checkpoint (built once per
    session; names in ``fixtures_models.BUILDERS``: llava_legacy, llava_next, qwen2_5_vl, ...)."""
    import fixtures_models

    root = tmp_path_factory.mktemp("stock")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = fixtures_models.BUILDERS[name](root)
        return built[name]

    return get
