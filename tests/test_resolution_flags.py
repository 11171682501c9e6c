"""The resolution flags are declared once (ResolutionConfig's fields) and read the same way by
argparse (``biores info``, ``biores-pretrain-vision``, the original-LLaVA preflight) and by
``HfArgumentParser`` (``biores-train``, the original-LLaVA ``DataArguments``)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from biores_plugin.errors import BioresConfigError
from biores_plugin.resolution import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    ResolutionConfig,
    add_resolution_arguments,
    pixel_range,
    resolution_fields,
)

ROOT = Path(__file__).resolve().parents[1]


def test_argparse_and_hf_parser_read_the_same_flags():
    from transformers import HfArgumentParser

    names = ("image_aspect_ratio", "min_pixels", "max_pixels", "mixed_resolution")
    parser = argparse.ArgumentParser()
    add_resolution_arguments(parser, names, dashes=True, image_aspect_ratio="square")
    flags = ["--max-pixels", "50176", "--min_pixels", "3136", "--mixed_resolution", "native:0.5,224:0.5"]
    plain = parser.parse_args(flags)
    cls = dataclasses.make_dataclass("Flags", resolution_fields(names, image_aspect_ratio="square"))
    (hf,) = HfArgumentParser(cls).parse_args_into_dataclasses(args=[f.replace("-pixels", "_pixels") for f in flags])
    assert (
        vars(plain)
        == dataclasses.asdict(hf)
        == {
            "image_aspect_ratio": "square",
            "min_pixels": 3136,
            "max_pixels": 50176,
            "mixed_resolution": "native:0.5,224:0.5",
        }
    )
    helps = {a.dest: a.help for a in parser._actions if a.dest in names}
    assert helps["max_pixels"] == dataclasses.fields(ResolutionConfig)[2].metadata["help"]
    assert str(DEFAULT_MAX_PIXELS) in helps["max_pixels"]
    with pytest.raises(SystemExit):  # typed: argparse refuses a non-integer budget
        parser.parse_args(["--max_pixels", "lots"])


def test_unknown_field_is_one_line_error():
    with pytest.raises(BioresConfigError, match="no field"):
        resolution_fields(("max_pixel",))


def test_default_range_is_filled_in_one_place():
    assert pixel_range(None, None) == (DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)
    assert ResolutionConfig(max_pixels=5000).pixel_range == (DEFAULT_MIN_PIXELS, 5000)
    assert ResolutionConfig(min_pixels=100).resolved(14).to_dict()["max_pixels"] == DEFAULT_MAX_PIXELS


def test_max_pixels_is_declared_as_a_flag_only_by_the_generator():
    """No module declares ``--max_pixels`` / ``--min_pixels`` (argparse) or a ``max_pixels`` /
    ``min_pixels`` flag field (dataclass) of its own: they come from ResolutionConfig."""
    flag = re.compile(
        r"""add_argument\(\s*["']--(min|max)[-_]pixels["']|\(\s*["'](min|max)_pixels["']\s*,\s*(Optional|int)"""
    )
    declared = []
    for file in [*(ROOT / "biores_plugin").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]:
        text = file.read_text()
        declared += [f"{file.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}" for m in flag.finditer(text)]
    assert declared == []
