"""A uBench sweep in micrometres per pixel, end to end through the real lmms-eval CLI and
``biores report``: each image resampled by its row's ``microns_per_pixel``; one image is DICOM."""

from __future__ import annotations

import json
import pathlib
import shutil

import pydicom
import pytest
from conftest import run_lmms_eval
from fixtures_real import build_ubench

from biores_plugin.errors import BioresConfigError
from biores_plugin.resolution.levels import (
    level_display,
    level_order,
    parse_levels,
    resolution_label,
)

DICOM = pathlib.Path(pydicom.__file__).parent / "data" / "test_files" / "MR_small.dcm"  # 64 x 64
#: per fixture row (8 rows; row 2 has no classification question, row 6's data set is not in the authors'
#: list): µm per pixel, None = unknown
MPP = [0.25, 0.5, 0.5, 0.5, None, None, None, None]


def _ubench_with_pixel_sizes(root: pathlib.Path) -> pathlib.Path:
    """build_ubench's hub layout, plus the real ``microns_per_pixel`` column; row 1 is a DICOM file."""
    from datasets import Dataset
    from datasets import Image as HFImage

    build_ubench(root)
    shard = root / "perception" / "0.1.0" / "ubench-test-00000-of-00001.arrow"
    ds = Dataset.from_file(str(shard)).cast_column("image", HFImage(decode=False))
    images = list(ds["image"])
    images[1] = {"bytes": DICOM.read_bytes(), "path": None}
    ds = ds.remove_columns("image").add_column("image", images).cast_column("image", HFImage())
    ds = ds.add_column("microns_per_pixel", MPP)
    saved = root.parent / ".ubench-mpp-save"
    ds.save_to_disk(str(saved))
    shard.unlink()
    shutil.copy(next(saved.glob("*.arrow")), shard)
    shutil.copy(saved / "dataset_info.json", shard.parent / "dataset_info.json")
    shutil.rmtree(saved)
    return root


def test_micron_levels_parse_label_and_order():
    assert parse_levels("2um,1um,0.5um,native") == [-2000, -1000, -500, 0]
    assert [resolution_label(level) for level in parse_levels("2um, 0p5um,448")] == ["2um", "0p5um", "448"]
    assert level_display("0p5um") == "0.5 µm/px" and level_display("448") == "448"
    assert sorted(["native", "0.5 µm/px", "2 µm/px", "1 µm/px"], key=level_order) == [
        "2 µm/px",
        "1 µm/px",
        "0.5 µm/px",
        "native",
    ]
    with pytest.raises(BioresConfigError, match="or a pixel size such as 0.5um"):
        parse_levels("2mm")


def test_micron_levels_refused_for_data_sets_without_pixel_size(tmp_path):
    from biores_plugin.task_authoring.taskgen import write_custom_sweep

    with pytest.raises(BioresConfigError, match="vqa_rad does not: use longest sides in pixels"):
        write_custom_sweep("vqa_rad", ["1um", "native"], tmp_path)


def test_ubench_swept_in_microns_through_lmms_eval_and_report(tmp_path_factory, lmms_model_args, capsys):
    from biores_plugin.cli import main

    root = _ubench_with_pixel_sizes(tmp_path_factory.mktemp("ubench_mpp") / "ubench")
    tasks_dir = tmp_path_factory.mktemp("um_tasks")
    assert main(["tasks", "--dataset", "ubench", "--resolutions", "2um,1um,native", "--out", str(tasks_dir)]) == 0
    capsys.readouterr()
    names = ["biores_ubench_r_2um", "biores_ubench_r_1um", "biores_ubench_r_native"]
    assert all((tasks_dir / "biores_ubench_r" / f"{n}.yaml").is_file() for n in names)

    model, model_args = lmms_model_args
    out = tmp_path_factory.mktemp("um_run") / "out"
    args = [
        "--model",
        model,
        "--model_args",
        model_args,
        "--include_path",
        str(tasks_dir),
        "--tasks",
        ",".join(names),
        "--gen_kwargs",
        "max_new_tokens=2",
    ]
    env = {
        "BIORES_UBENCH_PATH": str(root),
        "LMMS_EVAL_DATASETS_CACHE": str(tmp_path_factory.mktemp("hf")),
        "OMP_NUM_THREADS": "1",
    }
    results = run_lmms_eval(args, out, env=env)

    # stored sizes of the 6 rows asked: 1200x900 @0.25, DICOM 64x64 @0.5, 640x480 @0.5, then 700x1000,
    # 200x150 and 1200x900 of unknown pixel size (kept as stored)
    unknown = [[700, 1000], [200, 150], [1200, 900]]
    expected = {
        "2um": [[150, 112], [16, 16], [160, 120], *unknown],
        "1um": [[300, 225], [32, 32], [320, 240], *unknown],
        "native": [[1200, 900], [64, 64], [640, 480], *unknown],
    }
    for name in names:
        label = name.rsplit("_", 1)[1]
        assert results["n-samples"][name]["effective"] == 6
        [samples_file] = list(out.glob(f"**/*_samples_{name}.jsonl"))
        samples = sorted(
            (json.loads(line) for line in samples_file.read_text().splitlines() if line.strip()),
            key=lambda s: s["doc_id"],
        )
        # the size record every biores metric carries (whatever the protocol names its metrics)
        records = [next(v for v in s.values() if isinstance(v, dict) and "eff_size" in v) for s in samples]
        assert [r["resolution"] for r in records] == [label] * 6
        assert [r["eff_size"] for r in records] == expected[label]
        assert records[1]["orig_size"] == [64, 64]  # the DICOM row, read through the checked loader
        assert results["results"][name]["biores_skipped_images,none"] == 0.0

    report = tmp_path_factory.mktemp("um_report")
    assert main(["report", str(out), "--out", str(report)]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if "ubench_r" in line and len(line.split("|")) == 10]  # accuracy table
    assert [line.split("|")[4].strip() for line in rows] == ["2 µm/px", "1 µm/px", "native"]
    assert "2 µm/px" in (report / "report.md").read_text()
