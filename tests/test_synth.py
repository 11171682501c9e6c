"""Tests of the synthetic resolution-sensitive benchmark (biores_plugin.synth)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from biores_plugin.errors import BioresConfigError
from biores_plugin.synth import (
    GENERATORS,
    add_arguments,
    design_labels,
    detect,
    detect_coarse,
    downsample,
    fine_score,
    generate_item,
    is_complete,
    item_seed,
    load_split,
    missing_data_message,
    read_meta,
    run,
    tokenize,
    vocabulary,
    write_dataset,
)
from biores_plugin.synth import dataset as synth_dataset

ALL = tuple(GENERATORS)
DS_PARAMS = dict(generators=ALL, n_train=6, n_test=4, size="256x192", seed=3, progress=False)
N_PROPERTY = 200  # images per generator for the balance / resolution checks
ITEM_KEYS = {
    "id",
    "generator",
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
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    import datasets.config

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    return write_dataset(out, **DS_PARAMS)


@pytest.fixture(scope="module")
def property_runs():
    """Per generator: native-size items with seeded random labels, and detector outcomes."""
    res = {}
    for g in ALL:
        rows = []
        for i in range(N_PROPERTY):
            img, items = generate_item(g, 50_000 + i, 256)
            coarse, fine = items
            lo = downsample(img, 4, Image.LANCZOS)
            lo_bic = downsample(img, 4, Image.BICUBIC)
            rows.append(
                {
                    "coarse": coarse["answer"],
                    "fine": fine["answer"],
                    "det_native": detect(g, img),
                    "det_low": detect(g, lo, native_size=img.size),
                    "det_low_bicubic": detect(g, lo_bic, native_size=img.size),
                    "score_low": fine_score(g, lo, native_size=img.size),
                    "coarse_low": detect_coarse(g, lo),
                }
            )
        res[g] = rows
    return res


# ------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------
def test_determinism_same_seed_identical_bytes():
    for g in ALL:
        a, ia = generate_item(g, 7, 192)
        b, ib = generate_item(g, 7, 192)
        c, _ = generate_item(g, 8, 192)
        assert a.tobytes() == b.tobytes() and ia == ib
        assert a.tobytes() != c.tobytes()


def test_generator_rng_records_reproducing_seed():
    img, items = generate_item("fundus", np.random.default_rng(11), 192)
    again, items2 = generate_item("fundus", items[0]["seed"], 192)
    assert img.tobytes() == again.tobytes() and items == items2


def test_explicit_labels_only_change_labels():
    for g in ALL:
        spec = GENERATORS[g]
        for fine in (True, False):
            for coarse in spec.coarse.options:
                _, items = generate_item(g, 5, 192, labels={"fine": fine, "coarse": coarse})
                assert items[0]["answer"] == coarse
                assert items[1]["answer"] == ("yes" if fine else "no")
    with pytest.raises(BioresConfigError):
        generate_item("puncta", 5, 192, labels={"fine": True, "coarse": "seven"})


@pytest.mark.parametrize("generator", ALL)
@pytest.mark.parametrize("size", [192, 256, "384x256", (256, 320)])
def test_generators_all_sizes(generator, size):
    w, h = (size, size) if isinstance(size, int) else ((384, 256) if size == "384x256" else size)
    img, items = generate_item(generator, 1, size)
    assert img.size == (w, h)
    assert img.mode == GENERATORS[generator].mode
    arr = np.asarray(img)
    assert arr.dtype == np.uint8 and arr.std() > 5
    assert [it["question_type"] for it in items] == ["coarse", "fine"]
    for it in items:
        assert ITEM_KEYS <= set(it)
        assert it["generator"] == generator and it["seed"] == 1
        assert (it["native_width"], it["native_height"]) == (w, h)
        assert it["answer"] in it["options"] and it["answer"] == it["answer"].lower()
        assert it["critical_scale_px"] > 0
        assert all(t in vocabulary([generator]) for t in tokenize(it["question"]))
    assert 2.2 <= items[1]["critical_scale_px"] <= 2.8
    assert items[0]["critical_scale_px"] > 3 * items[1]["critical_scale_px"]


def test_answers_balanced(property_runs):
    for g, rows in property_runs.items():
        fine_yes = np.mean([r["fine"] == "yes" for r in rows])
        assert abs(fine_yes - 0.5) < 0.12, (g, fine_yes)
        opts = GENERATORS[g].coarse.options
        for o in opts:
            frac = np.mean([r["coarse"] == o for r in rows])
            assert abs(frac - 1 / len(opts)) < 0.1, (g, o, frac)


def test_design_labels_exactly_balanced_and_seeds_split_dependent():
    for g in ALL:
        opts = GENERATORS[g].coarse.options
        labs = [design_labels(0, "train", g, i) for i in range(8 * len(opts))]
        assert sum(lab["fine"] for lab in labs) == len(labs) // 2
        assert {o: sum(lab["coarse"] == o for lab in labs) for o in opts} == {o: 8 for o in opts}
    assert item_seed(0, "train", "puncta", 3) != item_seed(0, "test", "puncta", 3)
    assert item_seed(0, "train", "puncta", 3) != item_seed(1, "train", "puncta", 3)
    assert item_seed(0, "train", "puncta", 3) == item_seed(0, "train", "puncta", 3)


def test_bad_arguments_raise_config_error():
    with pytest.raises(BioresConfigError, match="valid generators: puncta, mitosis, fundus, striations"):
        generate_item("xray", 0)
    for bad in ("abc", 0, 100, "9000", (256,), "256x1000", True):
        with pytest.raises(BioresConfigError):
            generate_item("puncta", 0, bad)
    with pytest.raises(BioresConfigError):
        generate_item("puncta", -1)
    with pytest.raises(BioresConfigError):
        detect("nope", Image.new("L", (64, 64)))


def test_vocabulary_covers_questions_and_answers():
    vocab = vocabulary(ALL)
    assert vocab == sorted(set(vocab))
    assert {"yes", "no", "one", "four", "left", "right", "?"} <= set(vocab)
    assert len(vocab) <= 40
    assert vocabulary(["striations"]) == sorted(
        {"how", "many", "cells", "are", "there", "?", "the", "striated", "yes", "no", "one", "two", "three", "four"}
    )
    assert vocabulary("striations,puncta") == vocabulary(["puncta", "striations"])


# ------------------------------------------------------------------------------------------
# the resolution property (the heart of the benchmark)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("generator", ALL)
def test_fine_question_needs_native_resolution(property_runs, generator):
    rows = property_runs[generator]

    def acc(key):
        return np.mean([r[key] == r["fine"] for r in rows])

    assert acc("det_native") >= 0.9
    assert abs(acc("det_low") - 0.5) <= 0.15
    assert abs(acc("det_low_bicubic") - 0.5) <= 0.15
    # even a threshold fitted on low-resolution scores does not transfer (cross-fitted)
    s = np.array([r["score_low"] for r in rows])
    y = np.array([r["fine"] == "yes" for r in rows])
    half = len(rows) // 2
    cands = np.unique(s[:half])
    for sign in (1, -1):
        fit_acc = [np.mean((sign * s[:half] > sign * t) == y[:half]) for t in cands]
        t = cands[int(np.argmax(fit_acc))]
        held_out = np.mean((sign * s[half:] > sign * t) == y[half:])
        assert abs(held_out - 0.5) <= 0.15, (sign, held_out)


@pytest.mark.parametrize("generator", ALL)
def test_coarse_question_survives_low_resolution(property_runs, generator):
    rows = property_runs[generator]
    assert np.mean([r["coarse_low"] == r["coarse"] for r in rows]) >= 0.7


@pytest.mark.parametrize("size", [192, "384x256"])
def test_resolution_property_other_sizes(size):
    for g in ALL:
        ok_native = ok_low = ok_coarse = 0
        n = 16
        for i in range(n):
            img, items = generate_item(g, 900 + i, size, labels=design_labels(9, "test", g, i))
            fine = items[1]["answer"]
            lo = downsample(img, 4)
            ok_native += detect(g, img) == fine
            ok_low += detect(g, lo, native_size=img.size) == fine
            ok_coarse += detect_coarse(g, lo) == items[0]["answer"]
        assert ok_native / n >= 0.9 and abs(ok_low / n - 0.5) <= 0.15 and ok_coarse / n >= 0.7, (g, size)


# ------------------------------------------------------------------------------------------
# on-disk dataset
# ------------------------------------------------------------------------------------------
def test_dataset_round_trip(small_ds, tmp_path):
    import datasets

    meta = json.loads((small_ds / "meta.json").read_text())
    assert meta["format_version"] >= 1 and meta["content_hash"].startswith("sha256:")
    assert meta["generators"] == list(ALL) and meta["size"] == {"width": 256, "height": 192}
    assert meta["counts"]["train"] == {"images": 6 * len(ALL), "rows": 12 * len(ALL)}
    assert meta["vocabulary"] == vocabulary(ALL)
    train = datasets.load_dataset(
        "parquet", data_files={"train": str(small_ds / "train.parquet")}, split="train", cache_dir=str(tmp_path / "hf")
    )
    test = load_split(small_ds, "test", cache_dir=str(tmp_path / "hf"))
    assert len(train) == 12 * len(ALL) and len(test) == 8 * len(ALL)
    assert isinstance(train.features["image"], datasets.Image)
    row = train[0]
    assert isinstance(row["image"], Image.Image)
    assert row["image"].size == (row["native_width"], row["native_height"]) == (256, 192)
    vocab = set(vocabulary(ALL))
    for r in test:
        assert r["answer"] in r["options"]
        assert set(tokenize(r["question"])) <= vocab and r["answer"] in vocab
    # the PNG shared by an image's two rows is stored once (dictionary-encoded image bytes)
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(small_ds / "train.parquet")
    col = pf.schema_arrow.get_field_index("image")
    assert "RLE_DICTIONARY" in pf.metadata.row_group(0).column(col).encodings
    # two rows per image (coarse, fine) with the same pixels; the image reproduces from its seed
    by_key = {}
    for r in train:
        by_key.setdefault((r["generator"], r["index"]), []).append(r)
    assert all(sorted(x["question_type"] for x in v) == ["coarse", "fine"] for v in by_key.values())
    (g, i), pair = next(iter(by_key.items()))
    regen, _ = generate_item(g, pair[0]["seed"], (256, 192), labels=design_labels(3, "train", g, i))
    assert np.array_equal(np.asarray(pair[0]["image"]), np.asarray(regen))
    assert np.array_equal(np.asarray(pair[1]["image"]), np.asarray(regen))
    # train and test images differ
    train_px = {np.asarray(r["image"]).tobytes() for r in train}
    assert not train_px & {np.asarray(r["image"]).tobytes() for r in test}


def test_load_in_fresh_offline_process(small_ds, tmp_path):
    code = (
        "import sys, datasets; from PIL import Image\n"
        "ds = datasets.load_dataset('parquet', data_files={'test': sys.argv[1]}, split='test', cache_dir=sys.argv[2])\n"
        "im = ds[0]['image']; assert isinstance(im, Image.Image)\n"
        "print(len(ds), im.size[0], im.size[1], ds[0]['native_width'], ds[0]['native_height'])\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(small_ds / "test.parquet"), str(tmp_path / "hf")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(8 * len(ALL)), "256", "192", "256", "192"]


def test_cache_hit_and_param_mismatch(small_ds):
    files = sorted(small_ds.iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in files}
    assert write_dataset(small_ds, **DS_PARAMS) == small_ds  # a cache hit: no file rewritten (mtimes below)
    assert {p.name: p.stat().st_mtime_ns for p in sorted(small_ds.iterdir())} == before
    with pytest.raises(BioresConfigError) as err:
        write_dataset(small_ds, **{**DS_PARAMS, "n_train": 7})
    assert "n_train 6 -> 7" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BioresConfigError):
        write_dataset(small_ds, **{**DS_PARAMS, "generators": ("bogus",)})


def test_deterministic_content_and_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(synth_dataset, "_CHUNK_IMAGES", 3)  # several chunks, so workers really split them
    kw = dict(generators=("striations", "mitosis"), n_train=5, n_test=2, size=128, seed=1, progress=False)
    a = read_meta(write_dataset(tmp_path / "a", **kw))
    b = read_meta(write_dataset(tmp_path / "b", workers=2, **kw))
    c = read_meta(write_dataset(tmp_path / "c", **{**kw, "seed": 2}))
    assert a["content_hash"] == b["content_hash"] != c["content_hash"]


def test_interruptions_never_look_complete(tmp_path, monkeypatch):
    kw = dict(generators=("striations",), n_train=3, n_test=2, size=128, progress=False)
    out = tmp_path / "ds"
    # a stale temp folder of a dead process (partial files, no meta) is neither used nor kept
    stale = tmp_path / f".ds.tmp-{2**31 - 2}-dead"
    stale.mkdir()
    (stale / "train.parquet").write_bytes(b"PAR1 partial")
    assert not is_complete(out) and not is_complete(stale)
    with pytest.raises(BioresConfigError, match="biores synth --out"):
        load_split(out, "train")
    # interrupted in the middle of writing: nothing left behind
    real = synth_dataset._write_split

    def boom(path, *a, **k):
        real(path, *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(synth_dataset, "_write_split", boom)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(out, **kw)
    assert not out.exists() and not list(tmp_path.glob(".ds.tmp-*"))
    monkeypatch.setattr(synth_dataset, "_write_split", real)
    write_dataset(out, **kw)
    assert is_complete(out) and not stale.exists()
    # a folder whose files do not match meta.json is incomplete: refused unless overwrite
    with open(out / "test.parquet", "ab") as f:
        f.write(b"x")
    assert not is_complete(out)
    with pytest.raises(BioresConfigError, match="incomplete"):
        write_dataset(out, **kw)
    write_dataset(out, overwrite=True, **kw)
    assert is_complete(out)
    # a foreign, non-empty folder is never replaced, even with overwrite
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BioresConfigError, match="not a biores synthetic dataset"):
        write_dataset(foreign, overwrite=True, **kw)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_missing_data_message():
    msg = missing_data_message("/data/my synth")
    assert "biores synth --out '/data/my synth'" in msg and "\n" not in msg


# ------------------------------------------------------------------------------------------
# CLI hook
# ------------------------------------------------------------------------------------------
def _parse(argv):
    return add_arguments(argparse.ArgumentParser(prog="biores synth")).parse_args(argv)


def test_cli_run(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "--out",
        str(out),
        "--generators",
        "striations,fundus",
        "--n-train",
        "2",
        "--n-test",
        "1",
        "--size",
        "192x128",
        "--seed",
        "4",
        "--no-progress",
    ]
    assert run(_parse(argv)) == 0
    assert "written" in capsys.readouterr().out
    meta = read_meta(out)
    assert meta["params"] == {
        "generators": ["striations", "fundus"],
        "size": [192, 128],
        "seed": 4,
        "n_train": 2,
        "n_test": 1,
    }
    assert run(_parse(argv)) == 0
    assert "cached" in capsys.readouterr().out


def test_cli_bad_generator_one_line_error(tmp_path, capsys):
    rc = run(_parse(["--out", str(tmp_path / "x"), "--generators", "puncta,xray", "--no-progress"]))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "xray" in err and "puncta, mitosis, fundus, striations" in err
    assert not (tmp_path / "x").exists()
