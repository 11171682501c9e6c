"""The ``biores`` console command, run as a user runs it (installed script, subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biores_plugin.resolution import AnyResPolicy, FixedPolicy, NativePolicy


def biores(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("biores", path=str(Path(sys.executable).parent)) or shutil.which("biores")
    assert exe, "the biores console script is not installed"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )


@pytest.fixture(scope="module")
def sample_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    tiff = folder / "cells16.tif"
    tifffile.imwrite(tiff, rng.integers(200, 4000, (1200, 1600), dtype=np.uint16))
    jpeg = folder / "slide.jpg"
    Image.fromarray(rng.integers(0, 256, (600, 2000, 3), dtype=np.uint8)).save(jpeg, quality=90)
    return tiff, jpeg


def test_info_table_on_16bit_tiff_and_jpeg(sample_images):
    tiff, jpeg = sample_images
    result = biores("info", str(tiff), str(jpeg), "--policy", "native", "--policy", "pad", "--policy", "anyres")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["image", "policy", "before", "after"]
    assert len(lines) == 2 + 6
    native_row = next(line for line in lines if "cells16.tif" in line and " native " in f" {line} ")
    w, h = NativePolicy().resize_target(1600, 1200)
    assert "1600x1200" in native_row and f"{w}x{h}" in native_row
    assert native_row.split()[-1] == str(NativePolicy().visual_tokens(1600, 1200))


def test_info_json(sample_images):
    tiff, jpeg = sample_images
    result = biores("info", str(jpeg), "--policy", "pad", "--policy", "anyres_max_4", "--policy", "448", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["policy"] for r in rows] == ["pad336", "anyres_max_4", "448+native"]
    assert rows[0]["visual_tokens"] == FixedPolicy().visual_tokens(2000, 600) == 576
    assert rows[1]["visual_tokens"] == AnyResPolicy(max_num_patches=4).visual_tokens(2000, 600)
    assert (rows[2]["width"], rows[2]["height"]) == (2000, 600)
    assert max(rows[2]["out_width"], rows[2]["out_height"]) <= 448 + 14


def test_info_errors_are_one_line(tmp_path, sample_images):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    result = biores("info", str(broken))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "broken.png" in result.stderr
    result = biores("info", str(sample_images[1]), "--policy", "zoom")
    assert result.returncode == 2 and "unknown image_aspect_ratio" in result.stderr
    assert "Traceback" not in result.stderr


def test_info_pixel_budget_applies_to_native_policies_only(sample_images, capsys):
    from biores_plugin.cli import main

    tiff, _ = sample_images
    assert main(["info", str(tiff), "--json", "--max_pixels", "200000"]) == 0  # default policies include pad
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    budget = NativePolicy(max_pixels=200000)
    assert (rows["native"]["out_width"], rows["native"]["out_height"]) == budget.resize_target(1600, 1200)
    assert rows["pad336"]["visual_tokens"] == FixedPolicy().visual_tokens(1600, 1200)
