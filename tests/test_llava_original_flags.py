"""The original-LLaVA trainer's resolution flags without the llava package: the mixed-resolution draw, and
bad flags that must fail in one line before torch, transformers or llava is imported."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from train_flags import offline_env

from biores_plugin.resolution import DownsamplePolicy, NativePolicy

PATCH = 14
MIN_PIXELS, MAX_PIXELS = 14 * 14, 112 * 112


def test_mixed_resolution_sampler_follows_probabilities():
    from biores_plugin.resolution import MixedResolution, ResolutionConfig, resolution_label

    base = NativePolicy(PATCH, 1, MIN_PIXELS, MAX_PIXELS)
    mixed = MixedResolution("native:0.5,448:0.25,224:0.25", seed=42)
    labels = [resolution_label(mixed.draw(i)) for i in range(20000)]
    counts = Counter(labels)
    for label, p in mixed.probabilities.items():
        assert abs(counts[label] / len(labels) - p) < 0.015, (label, counts)
    again = MixedResolution("native:0.5,448:0.25,224:0.25", seed=42)
    assert [resolution_label(again.draw(i)) for i in range(500)] == labels[:500]
    other = MixedResolution("native:0.5,448:0.25,224:0.25", seed=43)
    assert [resolution_label(other.draw(i)) for i in range(500)] != labels[:500]
    config = ResolutionConfig(
        mixed_resolution=mixed.spec, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=PATCH
    )
    assert isinstance(config.level_policy(448), DownsamplePolicy) and config.level_policy(448).max_side == 448
    assert config.level_policy(0) == base


# ------------------------------------------------------------------------------------------------ flags
BAD_FLAGS = [
    (["--image_aspect_ratio", "bogus"], "--image_aspect_ratio 'bogus'"),
    (["--image_aspect_ratio", "native", "--mixed_resolution", "native:0.5,448:0.4"], "sum to 0.9"),
    (["--image_aspect_ratio", "native", "--mixed_resolution", "native:0.5,huge:0.5"], "'huge' is unknown"),
    (["--image_aspect_ratio", "native", "--min_pixels", "5000", "--max_pixels", "1000"], "larger than --max_pixels"),
    (["--image_aspect_ratio", "pad", "--max_pixels", "1000"], "only to --image_aspect_ratio native"),
]


@pytest.mark.parametrize("extra,message", BAD_FLAGS, ids=["aspect", "mix-sum", "mix-label", "min-max", "native-only"])
def test_bad_flags_fail_fast_with_one_line(tmp_path, extra, message):
    cmd = [
        sys.executable,
        "-m",
        "biores_plugin.original_llava.train",
        "--model_name_or_path",
        str(tmp_path / "no-model"),
        "--vision_tower",
        str(tmp_path / "no-tower"),
        "--data_path",
        str(tmp_path / "no.json"),
        "--output_dir",
        str(tmp_path / "out"),
        *extra,
    ]
    # -X importtime lists every module the process imported: validation must fail before torch / llava load
    proc = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]],
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"torch", "transformers", "llava"}, sorted(imported & {"torch", "transformers", "llava"})
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("import time:")]
    assert len(lines) == 1 and lines[0].startswith("biores-llava: error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and proc.stdout == ""
    assert not (tmp_path / "out").exists()
