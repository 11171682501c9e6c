"""Bad and odd inputs, generated in the session, through every entry point that takes them.

Each (case, entry point) must end in a one-line ``BioresError`` (CLIs: exit 2, one stderr line,
no traceback) or in the correct output that the case states (pixels, size). lmms-eval's
``LOAD_TRUNCATED_IMAGES = True`` is set throughout. To cover another entry point (train flags,
an lmms-eval run, ``biores report``), add an ``ENTRIES`` function and its cases, or a table of
your own checked with :func:`assert_one_line_error` / :func:`assert_cli_error`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bad_input_files import (
    GRAY,
    RAMP01,
    RGB,
    RNG,
    U8_BINARY,
    U16_BINARY,
    build_files,
    decoded,
    over_white,
    rgb3,
    smooth,
)
from PIL import Image, ImageFile

from biores_plugin.cli import main as biores_main
from biores_plugin.errors import BioresError
from biores_plugin.image_io import image_size, load_array, load_image
from biores_plugin.processing import BioresAnyResImageProcessor, BioresNativeImageProcessor
from biores_plugin.resolution import downsample, parse_policy
from biores_plugin.task_library.sweep import sweep_image

SWEEP_LEVEL = 224
INFO_POLICIES = ("native", "pad")
NATIVE = BioresNativeImageProcessor(min_pixels=28 * 28, max_pixels=256 * 28 * 28)
ANYRES = BioresAnyResImageProcessor(  # LLaVA-NeXT's layout at a third of its size: faster
    size={"shortest_edge": 112},
    crop_size={"height": 112, "width": 112},
    image_grid_pinpoints=[[112, 224], [224, 112], [224, 224], [336, 112], [112, 336]],
)


# ----------------------------------------------------------------------------- checks


def assert_one_line_error(call: Callable[[], Any], phrase: str = "") -> BioresError:
    """``call()`` raises a ``BioresError`` whose message is one line and holds ``phrase``."""
    with pytest.raises(BioresError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message, message
    assert phrase.lower() in message.lower(), f"{phrase!r} not in {message!r}"
    return info.value


def assert_cli_error(code: int, stderr: str, phrase: str = "") -> None:
    """A CLI failure: exit status 2, one stderr line holding ``phrase``, no traceback."""
    assert code == 2, stderr
    assert stderr.strip() and stderr.strip().count("\n") == 0, stderr
    assert "Traceback" not in stderr and phrase.lower() in stderr.lower(), stderr


@pytest.fixture(autouse=True)
def lmms_eval_truncation_flag(monkeypatch):
    """What importing lmms-eval does; every biores check must hold regardless (and restore it)."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    yield
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


# ----------------------------------------------------------------------------- the corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    for name, data in build_files().items():
        (root / name).write_bytes(data)
    (root / "folder.png").mkdir()
    return root


# ----------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One input. ``rgb`` gives the correct RGB pixels; ``None`` means it must be an error.

    ``header``: the size ``image_size`` reads without decoding, where decoding fails.
    ``errors``: entry point -> phrase, where that entry point must fail although ``rgb`` is set
    (an aspect ratio no patch grid takes). ``kind`` decides the entry points.
    """

    name: str
    make: Callable[[Path], Any]
    rgb: Callable[[Path], np.ndarray] | None = None
    error: str = ""
    header: tuple[int, int] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    kind: str = "path"


def path(name: str) -> Callable[[Path], Any]:
    return lambda root: str(root / name)


def data(name: str) -> Callable[[Path], Any]:
    return lambda root: (root / name).read_bytes()


def lazy(name: str) -> Callable[[Path], Any]:
    return lambda root: Image.open(root / name)


def loaded(name: str) -> Callable[[Path], Any]:
    def make(root: Path) -> Image.Image:
        im = Image.open(root / name)
        im.load()
        return im

    return make


def fixed(value: Any) -> Callable[[Path], Any]:
    return lambda root: value() if callable(value) else value


def file_rgb(name: str) -> Callable[[Path], np.ndarray]:
    return lambda root: decoded((root / name).read_bytes())


def closed_loaded(root: Path) -> Image.Image:
    im = Image.open(root / "rgb.png")
    im.load()
    im.close()
    return im


def closed_lazy(root: Path) -> Image.Image:
    with Image.open(root / "rgb.png") as im:
        pass
    return im


def closed_handle(root: Path) -> Image.Image:
    with open(root / "rgb.png", "rb") as fh:
        im = Image.open(fh)
    return im


def pil_la(root: Path) -> Image.Image:
    return Image.fromarray(np.stack([GRAY, np.full_like(GRAY, 128)], axis=-1), "LA")


def exif6_rgb(root: Path) -> np.ndarray:
    return np.rot90(decoded((root / "exif6.jpg").read_bytes()), -1)  # 6: rotate 90 degrees clockwise


def nan_at(shape: tuple[int, ...], value: float) -> np.ndarray:
    arr = np.full(shape, 0.5, np.float32)
    arr[(0,) * len(shape)] = value
    return arr


U16_CHANNELS = np.stack([U16_BINARY, np.full_like(U16_BINARY, 40000), np.zeros_like(U16_BINARY)], axis=-1)
FLIPPED = RGB[::-1]
READ_ONLY = RGB.copy()
READ_ONLY.flags.writeable = False
ROW_300 = smooth(2, 300)
IMAGE_PHRASES = {"truncated": "truncated", "not_image": "not a recognised image", "bomb": "decompression bomb"}

CASES = [
    # -- files that load: the correct pixels are Pillow's own decode or the array written
    Case("png_rgb", path("rgb.png"), fixed(RGB)),
    Case("jpeg_rgb", path("rgb.jpg"), file_rgb("rgb.jpg")),
    Case("tiff_rgb", path("rgb.tif"), fixed(RGB)),
    Case("bmp_rgb", path("rgb.bmp"), fixed(RGB)),
    Case("png_gray", path("gray.png"), fixed(rgb3(GRAY))),
    Case("png_palette", path("palette.png"), file_rgb("palette.png")),
    Case("png_palette_transparency", path("palette_trns.png"),
         lambda root: np.where((np.asarray(Image.open(root / "palette_trns.png")) == 0)[..., None], 255,
                               decoded((root / "palette_trns.png").read_bytes())).astype(np.uint8)),
    Case("png_la_alpha_over_white", path("la.png"),
         fixed(lambda: over_white(rgb3(GRAY), np.tile(np.arange(90, dtype=np.uint8) * 2, (120, 1))))),
    Case("png_bilevel", path("bilevel.png"), fixed(rgb3(U8_BINARY))),
    Case("jpeg_cmyk", path("cmyk.jpg"), file_rgb("cmyk.jpg")),
    Case("png_16bit_binary", path("u16_binary.png"), fixed(rgb3(U8_BINARY))),
    Case("png_16bit_constant_40000", path("u16_const40000.png"), fixed(np.full((20, 30, 3), 156, np.uint8))),
    Case("tiff_float_unit_range", path("float01.tif"), fixed(rgb3(np.rint(RAMP01 * 255).astype(np.uint8)))),
    Case("tiff_zstack_max", path("zstack.tif"), fixed(rgb3(np.maximum(U8_BINARY, U8_BINARY[::-1])))),
    Case("png_one_pixel", path("one_px.png"), fixed(np.array([[[10, 200, 30]]], np.uint8))),
    Case("png_row_1x3000", path("row_1x3000.png"), fixed(np.tile(RGB[:1, :1], (1, 3000, 1))),
         errors={"native": "aspect ratio", "info": "aspect ratio"}),
    Case("png_thin_4x800", path("thin_4x800.png"), file_rgb("thin_4x800.png")),
    Case("jpeg_exif_rotated", path("exif6.jpg"), exif6_rgb),
    Case("png_exif_rotated", path("exif8.png"), fixed(np.rot90(RGB, 1))),  # 8: 90 degrees counter-clockwise
    # -- files that must not load
    Case("png_truncated", path("truncated.png"), error="truncated", header=(240, 180)),
    Case("jpeg_truncated", path("truncated.jpg"), error="truncated", header=(240, 180)),
    Case("tiff_truncated", path("truncated.tif"), error="truncated", header=(240, 180)),
    Case("png_bit_flipped", path("bitflip.png"), error="checksum", header=(240, 180)),
    Case("tiff_float_nan", path("float_nan.tif"), error="non-finite", header=(40, 30)),
    Case("random_bytes_file", path("random.bin"), error="not a recognised image"),
    Case("empty_file", path("empty.png"), error="empty"),
    Case("text_file", path("text.png"), error="not a recognised image"),
    Case("missing_file", path("missing.png"), error="not found"),
    Case("directory", path("folder.png"), error="directory"),
    Case("png_bomb_header", path("bomb.png"), error="decompression bomb"),
    Case("tiff_bomb_header", path("bomb.tif"), error="decompression bomb"),
    Case("png_zero_width", path("zero_width.png"), error="zero"),
    # -- bytes and file-like objects
    Case("bytes_png", data("rgb.png"), fixed(RGB), kind="bytes"),
    Case("bytes_truncated_jpeg", data("truncated.jpg"), error="truncated", header=(240, 180), kind="bytes"),
    Case("bytes_random", fixed(RNG.integers(0, 256, 999, dtype=np.uint8).tobytes()), error="<bytes>", kind="bytes"),
    Case("bytes_empty", fixed(b""), error="empty", kind="bytes"),
    Case("file_like_png", lambda root: io.BytesIO((root / "rgb.png").read_bytes()), fixed(RGB), kind="bytes"),
    Case("file_like_text_mode", lambda root: io.StringIO("hello"), error="binary", kind="bytes"),
    Case("unsupported_int", fixed(42), error="unsupported source type", kind="bytes"),
    Case("none_source", fixed(None), error="unsupported source type", kind="bytes"),
    # -- PIL images: lazy, closed, EXIF, odd modes
    Case("pil_lazy_png", lazy("rgb.png"), fixed(RGB), kind="pil"),
    Case("pil_lazy_truncated_png", lazy("truncated.png"), error="truncated", header=(240, 180), kind="pil"),
    Case("pil_lazy_truncated_jpeg", lazy("truncated.jpg"), error="truncated", header=(240, 180), kind="pil"),
    Case("pil_lazy_truncated_gray", lazy("truncated_gray.png"), error="truncated", header=(90, 120), kind="pil"),
    Case("pil_lazy_bit_flipped", lazy("bitflip.png"), error="checksum", header=(240, 180), kind="pil"),
    Case("pil_closed", closed_loaded, error="closed", kind="pil"),
    Case("pil_closed_lazy", closed_lazy, error="closed", kind="pil"),
    Case("pil_closed_file_handle", closed_handle, error="closed", kind="pil"),
    Case("pil_lazy_exif_jpeg", lazy("exif6.jpg"), exif6_rgb, kind="pil"),
    Case("pil_loaded_exif_jpeg", loaded("exif6.jpg"), exif6_rgb, kind="pil"),
    Case("pil_palette", lambda root: Image.fromarray(RGB).convert("P"), lambda root: np.asarray(
        Image.fromarray(RGB).convert("P").convert("RGB")), kind="pil"),
    Case("pil_cmyk", lambda root: Image.fromarray(RGB).convert("CMYK"),
         lambda root: np.asarray(Image.fromarray(RGB).convert("CMYK").convert("RGB")), kind="pil"),
    Case("pil_la", pil_la, fixed(lambda: over_white(rgb3(GRAY), np.full_like(GRAY, 128))), kind="pil"),
    Case("pil_16bit_constant_65535", lambda root: Image.fromarray(np.full((12, 16), 65535, np.uint16)),
         fixed(np.full((12, 16, 3), 255, np.uint8)), kind="pil"),
    Case("pil_float_nan", lambda root: Image.fromarray(nan_at((10, 12), np.nan)), error="non-finite",
         header=(12, 10), kind="pil"),
    Case("pil_zero_sized", lambda root: Image.new("L", (0, 5)), error="zero-sized", kind="pil"),
    # -- numpy arrays
    Case("array_negative_strides", fixed(FLIPPED), fixed(np.ascontiguousarray(FLIPPED)), kind="array"),
    Case("array_read_only", fixed(READ_ONLY), fixed(RGB), kind="array"),
    Case("array_rgb_2_rows", fixed(ROW_300), fixed(ROW_300), kind="array"),
    Case("array_bool_mask", fixed(U8_BINARY > 0), fixed(rgb3(U8_BINARY)), kind="array"),
    Case("array_big_endian_16bit", fixed(U16_BINARY.astype(">u2")), fixed(rgb3(U8_BINARY)), kind="array"),
    Case("array_16bit_constant_channel", fixed(U16_CHANNELS),
         fixed(np.stack([U8_BINARY, np.full_like(U8_BINARY, 156), np.zeros_like(U8_BINARY)], axis=-1)), kind="array"),
    Case("array_float_constant_quarter", fixed(np.full((9, 11), 0.25, np.float32)),
         fixed(np.full((9, 11, 3), 64, np.uint8)), kind="array"),
    Case("array_float_constant_above_one", fixed(np.full((9, 11), 7.5, np.float64)),
         fixed(np.full((9, 11, 3), 255, np.uint8)), kind="array"),
    Case("array_nan", fixed(nan_at((8, 8, 3), np.nan)), error="non-finite", header=(8, 8), kind="array"),
    Case("array_inf", fixed(nan_at((8, 8), np.inf)), error="non-finite", header=(8, 8), kind="array"),
    Case("array_all_nan", fixed(np.full((4, 4), np.nan, np.float32)), error="finite", header=(4, 4), kind="array"),
    Case("array_zero_sized", fixed(np.zeros((0, 5, 3), np.uint8)), error="zero-sized", kind="array"),
    Case("array_1d", fixed(np.zeros(10, np.uint8)), error="ndim=1", kind="array"),
    Case("array_5d", fixed(np.zeros((2, 2, 2, 4, 4), np.uint8)), error="ndim=5", kind="array"),
    Case("array_complex", fixed(np.zeros((4, 4), np.complex64)), error="complex", kind="array"),
    Case("array_object", fixed(np.array([["a", "b"], ["c", "d"]], dtype=object)), error="dtype", kind="array"),
    # -- torch tensors
    Case("tensor_chw_uint8", fixed(lambda: torch.from_numpy(RGB.copy()).permute(2, 0, 1)), fixed(RGB), kind="tensor"),
    Case("tensor_hwc_float_unit", fixed(lambda: torch.from_numpy(RGB.astype(np.float32) / 255)), fixed(RGB),
         kind="tensor"),
    Case("tensor_hw_bool", fixed(lambda: torch.from_numpy(U8_BINARY > 0)), fixed(rgb3(U8_BINARY)), kind="tensor"),
    Case("tensor_bfloat16_chw", fixed(lambda: torch.full((3, 6, 5), 0.5, dtype=torch.bfloat16)),
         fixed(np.full((6, 5, 3), 128, np.uint8)), kind="tensor"),
    Case("tensor_nan", fixed(lambda: torch.from_numpy(nan_at((3, 8, 8), np.nan))), error="non-finite",
         header=(8, 8), kind="tensor"),
    Case("tensor_inf", fixed(lambda: torch.from_numpy(nan_at((8, 8, 3), -np.inf))), error="non-finite",
         header=(8, 8), kind="tensor"),
    Case("tensor_1d", fixed(lambda: torch.zeros(12)), error="tensor images must be", kind="tensor"),
    Case("tensor_5d", fixed(lambda: torch.zeros(1, 1, 3, 4, 4)), error="tensor images must be", kind="tensor"),
    Case("tensor_no_channel_axis", fixed(lambda: torch.zeros(20, 20, 20)), error="tensor images must be",
         kind="tensor"),
    Case("tensor_complex", fixed(lambda: torch.zeros(3, 4, 4, dtype=torch.complex64)), error="complex",
         kind="tensor"),
]  # fmt: skip

# ----------------------------------------------------------------------------- the entry points

#: The sweep still passes RGB PIL images to the resize without the checked route: these cases
#: need biores_plugin/task_library/sweep.py to call image_io.load_image(image, copy=False) first.
LOADERS = ("load_image", "load_array", "image_size", "verify", "native", "anyres")
KIND_ENTRIES = {
    "path": LOADERS + ("info",),
    "bytes": LOADERS,
    "pil": LOADERS + ("sweep",),
    "array": LOADERS,
    "tensor": LOADERS,
}


def expected(case: Case, root: Path) -> np.ndarray | None:
    return None if case.rgb is None else np.asarray(case.rgb(root))


def check_pixels(case: Case, root: Path, run: Callable[[Any], np.ndarray]) -> None:
    rgb = expected(case, root)
    if rgb is None:
        assert_one_line_error(lambda: run(case.make(root)), case.error)
    else:
        np.testing.assert_array_equal(run(case.make(root)), rgb)


def check_size(case: Case, root: Path, verify: bool) -> None:
    rgb = expected(case, root)
    size = None if rgb is None else (rgb.shape[1], rgb.shape[0])
    size = case.header if size is None and not verify else size
    if size is None:
        assert_one_line_error(lambda: image_size(case.make(root), verify=verify), case.error)
    else:
        assert image_size(case.make(root), verify=verify) == size


def check_processor(case: Case, root: Path, entry: str) -> None:
    processor, kwargs = (NATIVE, {}) if entry == "native" else (ANYRES, {"return_tensors": "pt"})
    rgb = expected(case, root)
    if rgb is None or entry in case.errors:
        assert_one_line_error(lambda: processor(case.make(root), **kwargs), case.errors.get(entry, case.error))
        return
    out, reference = processor(case.make(root), **kwargs), processor(Image.fromarray(rgb), **kwargs)
    assert set(out) == set(reference)
    for key in reference:
        got, want = out[key], reference[key]
        pairs = zip(got, want) if isinstance(want, list) else [(got, want)]
        assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in pairs), key


def check_sweep(case: Case, root: Path) -> None:
    rgb = expected(case, root)
    if rgb is None:
        assert_one_line_error(lambda: sweep_image(case.make(root), SWEEP_LEVEL), case.error)
        return
    out = sweep_image(case.make(root), SWEEP_LEVEL)
    want = downsample(Image.fromarray(rgb), SWEEP_LEVEL)
    assert out.mode == "RGB" and out.size == want.size
    np.testing.assert_array_equal(np.asarray(out), np.asarray(want))


def run_info(argv: list[str], capsys) -> tuple[int, str, str]:
    """``biores info`` in-process (argparse errors exit through SystemExit)."""
    try:
        code = biores_main(["info", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def check_info(case: Case, root: Path, capsys) -> None:
    rgb = expected(case, root)
    args = [case.make(root), "--json"] + [f"--policy={p}" for p in INFO_POLICIES]
    code, out, err = run_info(args, capsys)
    if rgb is None or "info" in case.errors:
        assert_cli_error(code, err, case.errors.get("info", case.error))
        assert not out
        return
    assert code == 0, err
    rows = json.loads(out)
    h, w = rgb.shape[:2]
    assert [(r["width"], r["height"]) for r in rows] == [(w, h)] * len(INFO_POLICIES)
    for row, spec in zip(rows, INFO_POLICIES):
        policy = parse_policy(spec, patch_size=14)
        assert (row["out_width"], row["out_height"]) == policy.resize_target(w, h)


ENTRIES: dict[str, Callable[..., None]] = {
    "load_image": lambda case, root, capsys: check_pixels(case, root, lambda s: np.asarray(load_image(s))),
    "load_array": lambda case, root, capsys: check_pixels(case, root, lambda s: load_array(s, keep_channels=False)),
    "image_size": lambda case, root, capsys: check_size(case, root, verify=False),
    "verify": lambda case, root, capsys: check_size(case, root, verify=True),
    "native": lambda case, root, capsys: check_processor(case, root, "native"),
    "anyres": lambda case, root, capsys: check_processor(case, root, "anyres"),
    "sweep": lambda case, root, capsys: check_sweep(case, root),
    "info": check_info,
}


def _params() -> list[Any]:
    return [pytest.param(case, entry, id=f"{case.name}-{entry}") for case in CASES for entry in KIND_ENTRIES[case.kind]]


@pytest.mark.parametrize("case, entry", _params())
def test_image_input(case: Case, entry: str, corpus: Path, capsys) -> None:
    ENTRIES[entry](case, corpus, capsys)


def test_corpus_is_large_enough():
    assert len(CASES) >= 60 and len({c.name for c in CASES}) == len(CASES)
    assert {e for c in CASES for e in KIND_ENTRIES[c.kind]} == set(ENTRIES)


# ----------------------------------------------------------------------------- biores info flags

INFO_FLAG_CASES = {
    "patch_size_zero": (["--patch-size", "0"], "--patch_size must be a positive integer"),
    "patch_size_negative": (["--patch_size", "-3"], "positive integer"),
    "patch_size_not_a_number": (["--patch-size", "abc"], "invalid int value"),
    "merge_size_zero": (["--merge-size", "0"], "--merge_size must be a positive integer"),
    "image_size_zero": (["--image-size", "0"], "--image_size must be a positive integer"),
    "image_size_negative": (["--image-size", "-336"], "positive integer"),
    "min_above_max": (["--min-pixels", "5000", "--max-pixels", "100"], "larger than --max_pixels"),
    "max_below_default_min": (["--max-pixels", "10"], "larger than --max_pixels"),
    "budget_without_native_policy": (["--policy", "pad", "--max-pixels", "5000"], "only applies to native"),
    "unknown_policy": (["--policy", "zoom"], "unknown image_aspect_ratio"),
    "anyres_max_zero": (["--policy", "anyres_max_0"], "anyres"),
    "unknown_flag": (["--patch-sizes", "14"], "unrecognized arguments"),
    "budget_below_one_patch": (["--policy", "native", "--max-pixels", "5000", "--min-pixels", "100",
                               "--patch-size", "112"], "max_pixels"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(INFO_FLAG_CASES))
def test_info_flag_errors_are_one_line(name: str, corpus: Path, capsys) -> None:
    flags, phrase = INFO_FLAG_CASES[name]
    code, out, err = run_info([str(corpus / "rgb.png"), *flags], capsys)
    assert_cli_error(code, err, phrase)
    assert not out


def test_info_without_images_is_one_line(capsys) -> None:
    code, out, err = run_info([], capsys)
    assert_cli_error(code, err, "required: images")


def test_info_stops_at_a_bad_file_without_a_table(corpus: Path, capsys) -> None:
    code, out, err = run_info([str(corpus / "rgb.png"), str(corpus / "truncated.png")], capsys)
    assert_cli_error(code, err, "truncated.png")
    assert not out  # no partial table


# ----------------------------------------------------------------------------- real subprocesses


def biores(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("biores", path=str(Path(sys.executable).parent)) or shutil.which("biores")
    assert exe, "the biores console script is not installed"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env=env)


GOOD_FILES = ("rgb.png", "rgb.jpg", "u16_binary.png", "float01.tif", "exif6.jpg", "one_px.png", "cmyk.jpg")


def test_info_subprocess_good_files_in_one_run(corpus: Path) -> None:
    result = biores("info", *(str(corpus / n) for n in GOOD_FILES), "--json", "--policy", "native")
    assert result.returncode == 0, result.stderr
    sizes = [(r["width"], r["height"]) for r in json.loads(result.stdout)]
    assert sizes == [(240, 180), (240, 180), (64, 48), (40, 30), (180, 240), (1, 1), (240, 180)]


@pytest.mark.parametrize("args, phrase", [
    (["truncated.jpg"], "truncated"),
    (["rgb.png", "--merge-size", "0"], "--merge_size"),
])  # fmt: skip
def test_info_subprocess_errors(corpus: Path, args: list[str], phrase: str) -> None:
    result = biores("info", *(str(corpus / a) if a.endswith((".png", ".jpg")) else a for a in args))
    assert_cli_error(result.returncode, result.stderr, phrase)
    assert not result.stdout
