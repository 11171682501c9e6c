"""One tiny ``biores-train`` run whose images are DICOM files in a local data folder."""

from __future__ import annotations

import json
import pathlib
import shutil

import pydicom
from train_flags import CPU_RUN, TINY_SIGLIP

TEST_FILES = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"
#: a CT (signed, rescaled), an MR, an RGB ultrasound-style colour file, a 30-frame YBR JPEG series
FILES = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm", "examples_ybr_color.dcm"]


def test_biores_train_reads_dicom_from_a_data_folder(tmp_path):
    from biores_plugin.train.trainer import train

    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    entries = []
    for i, name in enumerate(FILES):
        shutil.copy(TEST_FILES / name, images / f"study{i}.dcm")
        answer = "yes" if i % 2 else "no"
        entries.append(
            {
                "image": f"study{i}.dcm",
                "conversations": [
                    {"from": "human", "value": "<image>\nis there a lesion"},
                    {"from": "gpt", "value": answer},
                ],
            }
        )
    data = tmp_path / "data" / "train.json"
    data.write_text(json.dumps(entries))
    from biores_plugin.train.data import load_records

    sizes = [record.size for record in load_records(str(data), str(images))]
    assert sizes == [(128, 128), (64, 64), (100, 100), (320, 240)]  # Columns x Rows, read by the trainer's loader
    out = tmp_path / "run"
    stats = train(
        [
            *TINY_SIGLIP,
            "--data_path",
            str(data),
            "--image_folder",
            str(images),
            "--image_aspect_ratio",
            "native",
            "--merge_size",
            "2",
            "--output_dir",
            str(out),
            "--per_device_train_batch_size",
            "4",
            "--max_steps",
            "2",
            "--save_strategy",
            "no",
            "--logging_steps",
            "1",
            *CPU_RUN,
        ]
    )
    assert stats["global_step"] == 2
    batches = [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines() if line.strip()]
    assert sorted(i for b in batches[:1] for i in b["indices"]) == [0, 1, 2, 3]  # every DICOM study was trained on
