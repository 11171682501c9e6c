"""Write / load the synthetic benchmark as Hugging Face parquet splits (``train``, ``test``, ``meta.json``).

Generation is order independent (per-image seeds from ``(seed, split, generator, index)``) and
atomic: a temporary folder renamed into place under a file lock. Layout: docs/synth.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shlex
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import BioresConfigError
from ._common import FINE_PERIOD_RANGE, parse_size
from .generators import (
    DEFAULT_GENERATORS,
    GENERATOR_VERSION,
    GENERATORS,
    check_generators,
    render_array,
    vocabulary,
)

FORMAT = "biores-synth"
FORMAT_VERSION = 1
SPLITS = ("train", "test")
META_NAME = "meta.json"
DEFAULT_N_TRAIN = 1000
DEFAULT_N_TEST = 200
PNG_COMPRESS_LEVEL = 1
ROW_GROUP_ROWS = 100  # even: an image's two rows never straddle row groups
_DICT_PAGE_LIMIT = 1 << 30
_CHUNK_IMAGES = 64

# Stable codes (never reorder): seeds must not depend on which generators are selected.
_SPLIT_CODE = {"train": 1, "test": 2}
_GEN_CODE = {"puncta": 1, "mitosis": 2, "fundus": 3, "striations": 4}

COLUMNS = (
    "id",
    "image",
    "generator",
    "split",
    "index",
    "question",
    "options",
    "answer",
    "question_type",
    "native_width",
    "native_height",
    "critical_scale_px",
    "seed",
    "fine_present",
    "coarse_label",
    "count",
    "details",
)


def features():
    """The ``datasets.Features`` of every split."""
    from datasets import Features, List, Value
    from datasets import Image as HFImage

    return Features(
        {
            "id": Value("string"),
            "image": HFImage(),
            "generator": Value("string"),
            "split": Value("string"),
            "index": Value("int32"),
            "question": Value("string"),
            "options": List(Value("string")),
            "answer": Value("string"),
            "question_type": Value("string"),
            "native_width": Value("int32"),
            "native_height": Value("int32"),
            "critical_scale_px": Value("float32"),
            "seed": Value("int64"),
            "fine_present": Value("bool"),
            "coarse_label": Value("string"),
            "count": Value("int32"),
            "details": Value("string"),
        }
    )


# ----------------------------------------------------------------------------------------
# per-item seeds and balanced labels
# ----------------------------------------------------------------------------------------
def item_seed(seed: int, split: str, generator: str, index: int) -> int:
    """uint32 seed of image ``index`` of ``generator`` in ``split`` (order independent)."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(_SPLIT_CODE[split], _GEN_CODE[generator], int(index)))
    return int(ss.generate_state(1, np.uint32)[0])


def design_labels(seed: int, split: str, generator: str, index: int) -> dict:
    """Balanced labels: every (fine, coarse) combination once per block, in a seeded order."""
    opts = GENERATORS[generator].coarse.options
    n_combo = 2 * len(opts)
    block, pos = divmod(int(index), n_combo)
    ss = np.random.SeedSequence(int(seed), spawn_key=(_SPLIT_CODE[split], _GEN_CODE[generator], block, 7919))
    combo = int(np.random.default_rng(ss).permutation(n_combo)[pos])
    return {"fine": combo % 2 == 0, "coarse": opts[combo // 2]}


def _png_bytes(arr: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _make_rows(task):
    """Rows for a chunk of images: ``task = (seed, split, size, [(generator, index), ...])``."""
    seed, split, size, jobs = task
    rows = []
    for gen, index in jobs:
        s = item_seed(seed, split, gen, index)
        arr, items, info = render_array(gen, s, size, labels=design_labels(seed, split, gen, index))
        png = {"bytes": _png_bytes(arr, GENERATORS[gen].mode), "path": None}
        details = json.dumps(info["details"], sort_keys=True)
        for it in items:
            rows.append(
                {
                    "id": f"{gen}-{split}-{index:06d}-{it['question_type']}",
                    "image": png,
                    "generator": gen,
                    "split": split,
                    "index": int(index),
                    "question": it["question"],
                    "options": it["options"],
                    "answer": it["answer"],
                    "question_type": it["question_type"],
                    "native_width": it["native_width"],
                    "native_height": it["native_height"],
                    "critical_scale_px": it["critical_scale_px"],
                    "seed": it["seed"],
                    "fine_present": it["fine_present"],
                    "coarse_label": it["coarse_label"],
                    "count": it["count"],
                    "details": details,
                }
            )
    return rows


# ----------------------------------------------------------------------------------------
# parameters, meta and the cache check
# ----------------------------------------------------------------------------------------
def _params(generators, n_train, n_test, size, seed) -> dict:
    gens = check_generators(generators)
    w, h = parse_size(size)
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise BioresConfigError(f"{name} must be a non-negative integer, got {n!r}")
    if n_train + n_test == 0:
        raise BioresConfigError("n_train and n_test are both 0: nothing to generate")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
        raise BioresConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return {"generators": list(gens), "size": [w, h], "seed": int(seed), "n_train": int(n_train), "n_test": int(n_test)}


def _read_meta(out: Path) -> dict | None:
    """The meta of a *complete* dataset in ``out``, else None (missing, partial, corrupt)."""
    try:
        meta = json.loads((out / META_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    try:
        for info in meta["splits"].values():
            if (out / info["file"]).stat().st_size != info["bytes"]:
                return None
    except (OSError, KeyError, TypeError, AttributeError):
        return None
    return meta


def _same_build(meta: dict, params: dict) -> bool:
    return (
        meta.get("params") == params
        and meta.get("format_version") == FORMAT_VERSION
        and meta.get("generator_version") == GENERATOR_VERSION
    )


def _difference(meta: dict, params: dict) -> str:
    old = meta.get("params") or {}
    diffs = [f"{k} {old.get(k)!r} -> {params[k]!r}" for k in params if old.get(k) != params[k]]
    if meta.get("format_version") != FORMAT_VERSION or meta.get("generator_version") != GENERATOR_VERSION:
        diffs.append("older generator/format version")
    return ", ".join(diffs) or "unknown difference"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def missing_data_message(path) -> str:
    """One-line explanation of how to create the dataset expected at ``path``."""
    p = str(path)
    return (
        f"no complete biores synthetic dataset at {p}; create it with: "
        f"biores synth --out {shlex.quote(p)} (options: --generators, --n-train, --n-test, --size, --seed)"
    )


def is_complete(out_dir) -> bool:
    """Whether ``out_dir`` holds a complete synthetic dataset (meta.json and matching files)."""
    return _read_meta(Path(out_dir)) is not None


def read_meta(out_dir) -> dict:
    """The meta.json of a complete dataset; BioresConfigError with the create command otherwise."""
    meta = _read_meta(Path(out_dir))
    if meta is None:
        raise BioresConfigError(missing_data_message(out_dir))
    return meta


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------
_OWN_FILES = {f"{s}.parquet" for s in SPLITS} | {META_NAME, META_NAME + ".part"}


def _looks_like_ours(out: Path) -> bool:
    """Whether ``out`` only holds files this module writes, or a meta.json of this format."""
    try:
        meta_ok = json.loads((out / META_NAME).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):  # no or unreadable meta.json: judged by its file names below
        meta_ok = False
    return meta_ok or all(p.name in _OWN_FILES and p.is_file() for p in out.iterdir())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _clean_stale(parent: Path, name: str) -> None:
    """Remove temp / old folders of this dataset left by processes that no longer exist."""
    for kind in ("tmp", "old"):
        for p in parent.glob(f".{name}.{kind}-*"):
            try:
                pid = int(p.name.rsplit(".", 1)[-1].split("-")[1])
            except (IndexError, ValueError):
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                shutil.rmtree(p, ignore_errors=True)


def _write_split(path: Path, params: dict, split: str, n: int, *, workers: int, bar) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = features()
    schema = feats.arrow_schema
    try:  # start from Dataset.to_parquet's per-column options (uncompressed image bytes)
        from datasets.arrow_writer import get_parquet_column_options

        opts = get_parquet_column_options(feats, schema)
    except (ImportError, AttributeError, TypeError, KeyError):  # pragma: no cover - other datasets versions
        opts = {"compression": "snappy", "use_dictionary": [], "column_encoding": {}}
    # The two rows of an image (coarse, fine) hold the same PNG: dictionary-encode the image bytes
    # so each PNG is stored once per row group (halves the file; any parquet reader decodes it).
    opts["use_dictionary"] = [c for c in opts.get("use_dictionary", []) if c != "image.bytes"] + ["image.bytes"]
    opts["column_encoding"] = {k: v for k, v in opts.get("column_encoding", {}).items() if k != "image.bytes"} or None
    opts["dictionary_pagesize_limit"] = _DICT_PAGE_LIMIT
    size = tuple(params["size"])
    jobs = [(g, i) for i in range(n) for g in params["generators"]]
    tasks = [(params["seed"], split, size, jobs[k : k + _CHUNK_IMAGES]) for k in range(0, len(jobs), _CHUNK_IMAGES)]
    rows_written = 0
    writer = pq.ParquetWriter(str(path), schema=schema, **opts)
    try:
        if workers > 1 and len(tasks) > 1:
            import multiprocessing as mp

            pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
            results = pool.map(_make_rows, tasks)
        else:
            pool = None
            results = map(_make_rows, tasks)
        try:
            for task, rows in zip(tasks, results):
                table = pa.Table.from_pylist(rows, schema=schema)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                rows_written += len(rows)
                bar.update(len(task[3]))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    finally:
        writer.close()
    return {
        "file": path.name,
        "images": len(jobs),
        "rows": rows_written,
        "bytes": path.stat().st_size,
        "sha256": _sha256(path),
    }


def _generate_into(tmp: Path, params: dict, *, workers: int, progress: bool) -> dict:
    from tqdm.auto import tqdm

    n_gen = len(params["generators"])
    total = (params["n_train"] + params["n_test"]) * n_gen
    splits = {}
    with tqdm(total=total, desc="biores synth", unit="img", disable=not progress) as bar:
        for split in SPLITS:
            n = params[f"n_{split}"]
            if n > 0:
                splits[split] = _write_split(tmp / f"{split}.parquet", params, split, n, workers=workers, bar=bar)
    content = hashlib.sha256()
    for split in sorted(splits):
        content.update(f"{split}:{splits[split]['sha256']}\n".encode())
    from .. import __version__

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator_version": GENERATOR_VERSION,
        "params": params,
        "generators": params["generators"],
        "size": {"width": params["size"][0], "height": params["size"][1]},
        "seed": params["seed"],
        "counts": {s: {"images": v["images"], "rows": v["rows"]} for s, v in splits.items()},
        "splits": splits,
        "content_hash": "sha256:" + content.hexdigest(),
        "fine_period_px": list(FINE_PERIOD_RANGE),
        "questions": {
            g: {
                "coarse": {"question": GENERATORS[g].coarse.text, "options": list(GENERATORS[g].coarse.options)},
                "fine": {"question": GENERATORS[g].fine.text, "options": list(GENERATORS[g].fine.options)},
                "image_mode": GENERATORS[g].mode,
            }
            for g in params["generators"]
        },
        "vocabulary": vocabulary(params["generators"]),
        "columns": list(COLUMNS),
        "biores_version": __version__,
    }
    meta_tmp = tmp / (META_NAME + ".part")
    meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    meta_tmp.replace(tmp / META_NAME)  # meta last: its presence marks the folder complete
    return meta


def _write_dataset(out_dir, *, generators, n_train, n_test, size, seed, progress, overwrite, workers):
    params = _params(generators, n_train, n_test, size, seed)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise BioresConfigError(f"workers must be a positive integer, got {workers!r}")
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise BioresConfigError(f"output path {out} exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)

    def check_existing() -> bool:
        """True when ``out`` already holds this very dataset; raise when it must not be touched."""
        if not out.exists():
            return False
        meta = _read_meta(out)
        if meta is not None and not overwrite:
            if _same_build(meta, params):
                return True
            raise BioresConfigError(
                f"{out} holds a synthetic dataset with different parameters "
                f"({_difference(meta, params)}); use overwrite=True / --overwrite or another --out"
            )
        if not any(out.iterdir()):
            return False
        if meta is None and not _looks_like_ours(out):
            raise BioresConfigError(
                f"{out} exists and is not a biores synthetic dataset; refusing to replace it "
                "(even with --overwrite): choose another --out or remove it"
            )
        if not overwrite:
            raise BioresConfigError(
                f"{out} holds an incomplete synthetic dataset; "
                "use overwrite=True / --overwrite to regenerate it, or another --out"
            )
        return False

    if check_existing():  # fast path, no lock needed for a read
        return out, True

    from filelock import FileLock

    with FileLock(str(out.parent / f".{out.name}.lock")):
        if check_existing():  # another process may have finished it while we waited
            return out, True
        _clean_stale(out.parent, out.name)
        token = secrets.token_hex(4)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{token}"
        tmp.mkdir()
        try:
            _generate_into(tmp, params, workers=int(workers), progress=progress)
            old = None
            if out.exists():
                old = out.parent / f".{out.name}.old-{os.getpid()}-{token}"
                out.rename(old)
            tmp.rename(out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out, False


def write_dataset(
    out_dir,
    *,
    generators: str | Sequence[str] = DEFAULT_GENERATORS,
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
    size=256,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
    workers: int = 1,
) -> Path:
    """Generate the benchmark into ``out_dir`` and return its path.

    Args:
        generators: names (or a comma list) among ``puncta, mitosis, fundus, striations``.
        n_train, n_test: images *per generator* in each split (two rows per image).
        size: native size, ``256`` or ``"384x256"`` / ``(384, 256)`` (width x height).
        seed: base seed; train and test images use different per-item seeds.
        progress: show a tqdm progress bar.
        overwrite: replace whatever ``out_dir`` holds (even an identical dataset).
        workers: processes used to render / encode images (output is identical for any value).

    If ``out_dir`` already holds a complete dataset with the same parameters it is returned
    as is (cache hit). A different dataset, or a non-empty folder that is not a complete
    dataset, raises :class:`BioresConfigError` unless ``overwrite``.
    """
    path, _ = _write_dataset(
        out_dir,
        generators=generators,
        n_train=n_train,
        n_test=n_test,
        size=size,
        seed=seed,
        progress=progress,
        overwrite=overwrite,
        workers=workers,
    )
    return path


def load_split(out_dir, split: str, *, cache_dir: str | None = None):
    """Load one split as a ``datasets.Dataset`` (``image`` decodes to ``PIL.Image``)."""
    if split not in SPLITS:
        raise BioresConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    out = Path(out_dir).expanduser()
    meta = _read_meta(out)
    if meta is None:
        raise BioresConfigError(missing_data_message(out_dir))
    if split not in meta["splits"]:
        raise BioresConfigError(f"{out} has no {split!r} split (it was generated with n_{split}=0)")
    import datasets

    return datasets.load_dataset(
        "parquet", data_files={split: str(out / meta["splits"][split]["file"])}, split=split, cache_dir=cache_dir
    )
