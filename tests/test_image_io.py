"""Tests for biores_plugin.image_io. Every input is built on the fly (numpy / Pillow / tifffile)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from image_io_helpers import (
    RNG,
    assert_error,
    fake_png_header,
    fake_tiff_header,
    noise,
    pil_bytes,
    tiff_bytes,
)
from PIL import Image, ImageFile, ImageOps

from biores_plugin.errors import BioresConfigError, BioresImageError
from biores_plugin.image_io import (
    DEFAULT_MAX_PIXELS,
    ImageOptionError,
    image_size,
    load_array,
    load_image,
)

# ----------------------------------------------------------------------------- common formats


@pytest.mark.parametrize("as_", ["path", "pathlike", "bytes", "bytearray", "memoryview", "file", "pil"])
def test_rgb_png_every_source_kind(tmp_path, as_):
    arr = noise(9, 13)
    data = pil_bytes(Image.fromarray(arr))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    source = {
        "path": str(path),
        "pathlike": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "file": io.BytesIO(data),
        "pil": Image.fromarray(arr),
    }[as_]
    im = load_image(source)
    assert im.mode == "RGB" and im.size == (13, 9)
    np.testing.assert_array_equal(np.asarray(im), arr)
    if as_ == "file":
        source.seek(5)  # file-likes are read from their start, like Pillow does
    out = load_array(source)
    assert out.dtype == np.uint8 and out.shape == (9, 13, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, arr)
    assert image_size(source) == (13, 9)


def test_non_seekable_file_and_real_file_handle(tmp_path):
    arr = noise(6, 5)
    data = pil_bytes(Image.fromarray(arr))

    class Pipe(io.RawIOBase):
        def __init__(self, payload: bytes):
            self._buf = io.BytesIO(payload)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, b):
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    np.testing.assert_array_equal(load_array(Pipe(data)), arr)
    path = tmp_path / "f.png"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        np.testing.assert_array_equal(load_array(fh), arr)


def test_jpeg_and_cmyk_jpeg():
    arr = np.zeros((16, 16, 3), np.uint8)
    arr[:, :8] = (200, 30, 30)
    jpg = pil_bytes(Image.fromarray(arr), "JPEG", quality=95)
    out = load_array(jpg)
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB")))
    assert np.abs(out[4, 2].astype(int) - (200, 30, 30)).max() <= 12
    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))  # pure red in CMYK
    im = load_image(pil_bytes(cmyk, "JPEG", quality=95))
    assert im.mode == "RGB" and im.size == (8, 6)
    r, g, b = im.getpixel((4, 3))
    assert r > 230 and g < 25 and b < 25
    assert load_array(pil_bytes(cmyk, "JPEG")).shape == (6, 8, 3)


def test_grayscale_l_keeps_one_channel_or_replicates():
    gray = noise(7, 5, None)
    data = pil_bytes(Image.fromarray(gray))
    kept = load_array(data)
    assert kept.shape == (7, 5, 1)
    np.testing.assert_array_equal(kept[..., 0], gray)
    rgb = load_array(data, keep_channels=False)
    np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(np.asarray(load_image(data)), rgb)


def test_palette_with_transparency_uses_background():
    pal = Image.new("P", (4, 3))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putdata([0, 1, 0, 1] * 3)
    pal.info["transparency"] = 1  # index 1 (green) is transparent
    data = pil_bytes(pal, transparency=1)
    out = load_array(data, background=(10, 20, 30))
    assert out.shape == (3, 4, 3)
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[0, 1]) == (10, 20, 30)
    # without transparency the palette is simply expanded
    pal2 = pal.copy()
    pal2.info.pop("transparency")
    assert tuple(load_array(pil_bytes(pal2))[0, 1]) == (0, 255, 0)


def test_rgba_and_la_are_composited_not_dropped():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (10, 200, 30, 0)  # fully transparent -> background
    rgba[0, 1] = (10, 200, 30, 255)  # opaque -> colour
    rgba[0, 2] = (0, 0, 0, 128)  # half black over white
    out = load_array(pil_bytes(Image.fromarray(rgba, "RGBA")), background=(1, 2, 3))
    assert out.shape == (2, 3, 3)
    assert tuple(out[0, 0]) == (1, 2, 3)
    assert tuple(out[0, 1]) == (10, 200, 30)
    white = load_array(Image.fromarray(rgba, "RGBA"))
    assert tuple(white[0, 2]) == (127, 127, 127)
    la = Image.fromarray(np.array([[[50, 0], [50, 255]]], np.uint8), "LA")
    im = load_image(pil_bytes(la), background="blue")
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (0, 0, 255) and im.getpixel((1, 0)) == (50, 50, 50)


def test_exif_orientation_6_swaps_size_and_moves_pixel():
    arr = np.zeros((2, 4, 3), np.uint8)  # W=4, H=2
    arr[0, 0] = (255, 0, 0)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = pil_bytes(im, exif=exif.tobytes())
    out = load_image(data)
    assert out.size == (2, 4)
    assert out.getpixel((1, 0)) == (255, 0, 0)  # top-left moved to top-right
    assert image_size(data) == (2, 4)
    assert load_image(data, exif_transpose=False).size == (4, 2)
    assert image_size(data, exif_transpose=False) == (4, 2)
    jpeg = pil_bytes(Image.fromarray(noise(8, 16)), "JPEG", exif=exif.tobytes())
    assert image_size(jpeg) == (8, 16) and load_image(jpeg).size == (8, 16)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_tag_matches_pillow_exif_transpose(orientation):
    arr = noise(3, 5)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(pil_bytes(im, exif=exif.tobytes())))))
    data = tiff_bytes(arr, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    np.testing.assert_array_equal(load_array(data), expected)
    assert image_size(data) == (expected.shape[1], expected.shape[0])


def test_numpy_inputs():
    u16 = np.linspace(0, 65535, 20 * 30).reshape(20, 30).astype(np.uint16)
    out = load_array(u16, normalize="none")
    assert out.shape == (20, 30, 1) and out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    rgb = noise(5, 6)
    res = load_array(rgb)
    np.testing.assert_array_equal(res, rgb)
    assert not np.shares_memory(res, rgb)  # never a view of the caller's array
    flt = np.linspace(0, 1, 12, dtype=np.float64).reshape(3, 4)
    assert load_array(flt)[-1, -1, 0] == 255 and load_array(flt)[0, 0, 0] == 0
    chw = np.stack([np.zeros((10, 12)), np.ones((10, 12))]).astype(np.float32)
    assert load_array(chw).shape == (10, 12, 2)
    assert tuple(load_array(chw, keep_channels=False)[0, 0]) == (0, 255, 0)
    mask = np.zeros((4, 4), bool)
    mask[1, 1] = True
    assert load_array(mask)[1, 1, 0] == 255 and load_array(mask)[0, 0, 0] == 0
    zyx = RNG.integers(0, 1000, (20, 9, 10)).astype(np.uint16)
    np.testing.assert_array_equal(load_array(zyx, normalize="raw")[..., 0], zyx.max(axis=0))
    assert image_size(zyx) == (10, 9) and image_size(rgb) == (6, 5)
    assert load_image(u16).mode == "RGB"


def test_pil_inputs_are_not_modified():
    src = Image.fromarray(noise(5, 4))
    before = np.asarray(src).copy()
    out = load_image(src)
    assert out is not src
    out.putpixel((0, 0), (1, 2, 3))
    np.testing.assert_array_equal(np.asarray(src), before)
    i16 = Image.fromarray(np.arange(20, dtype=np.uint16).reshape(4, 5) * 100)
    assert load_array(i16, normalize="minmax")[-1, -1, 0] == 255
    f = Image.fromarray(np.full((3, 3), 0.5, np.float32))
    assert f.mode == "F" and load_array(f)[0, 0, 0] == 128


def test_truncated_flag_is_ignored_and_restored(monkeypatch):
    data = pil_bytes(Image.fromarray(noise(64, 64)))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(BioresImageError) as exc:
        load_image(data[: len(data) // 2])
    assert_error(exc, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_image_size_reads_header_only():
    data = pil_bytes(Image.fromarray(noise(40, 50)))
    assert image_size(data[: len(data) // 2]) == (50, 40)  # pixel data is never decoded
    assert image_size(fake_png_header(300, 200)) == (300, 200)


# ----------------------------------------------------------------------------- failures


def _bad_cases(tmp_path):
    png = pil_bytes(Image.fromarray(noise(64, 64)))
    jpg = pil_bytes(Image.fromarray(noise(64, 64)), "JPEG")
    tif = tiff_bytes(RNG.integers(0, 60000, (64, 64)).astype(np.uint16))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.png"
    folder.mkdir(exist_ok=True)
    return {
        "truncated_png": ((png[: len(png) // 2],), {}, ["truncated", "<bytes>"]),
        "truncated_jpeg": ((jpg[: len(jpg) // 2],), {}, ["truncated"]),
        "truncated_tiff": ((tif[: len(tif) // 2],), {}, ["truncated"]),
        "garbage": (
            (RNG.integers(0, 256, 500, dtype=np.uint8).tobytes(),),
            {},
            ["not a recognised image"],
        ),
        "empty_bytes": ((b"",), {}, ["empty"]),
        "empty_file": ((empty,), {}, ["empty", "empty.png"]),
        "empty_filelike": ((io.BytesIO(),), {}, ["empty"]),
        "missing": ((tmp_path / "nope.png",), {}, ["not found", "nope.png"]),
        "directory": ((str(folder),), {}, ["directory"]),
        "bomb_small_limit": (
            (png,),
            {"max_pixels": 1000},
            ["decompression bomb", "max_pixels=1000"],
        ),
        "bomb_png_header": (
            (fake_png_header(100_000, 100_000),),
            {},
            ["decompression bomb"],
        ),
        "bomb_tiff_header": (
            (fake_tiff_header(60_000, 60_000),),
            {},
            ["decompression bomb", "60000x60000"],
        ),
        "unsupported_type": ((42,), {}, ["unsupported source type", "int"]),
        "none_source": ((None,), {}, ["unsupported source type"]),
        "array_ndim1": ((np.zeros(10, np.uint8),), {}, ["ndim=1"]),
        "array_ndim5": ((np.zeros((2, 2, 2, 4, 4), np.uint8),), {}, ["ndim=5"]),
        "array_complex": ((np.zeros((4, 4), np.complex64),), {}, ["complex"]),
        "array_object": (
            (np.array([["a", "b"], ["c", "d"]], dtype=object),),
            {},
            ["dtype"],
        ),
        "array_zero": ((np.zeros((0, 5), np.uint8),), {}, ["zero-sized"]),
        "pil_zero": ((Image.new("L", (0, 5)),), {}, ["zero-sized"]),
        "all_nan": ((np.full((3, 3), np.nan, np.float32),), {}, ["finite"]),
        "text_file": ((io.StringIO("hello"),), {}, ["binary"]),
        "too_many_channels": (
            (np.zeros((4, 4, 5), np.uint8),),
            {"channels": [0, 1, 2, 3]},
            ["too many channels"],
        ),
        "channel_out_of_range": (
            (np.zeros((4, 4, 2), np.uint8),),
            {"channels": [0, 2]},
            ["out of range", "2 channels"],
        ),
        "negative_channel": ((png,), {"channels": [-1]}, [">= 0"]),
        "bad_projection": ((png,), {"projection": "median"}, ["projection"]),
        "bad_normalize": (
            (png,),
            {"normalize": "raw"},
            ["normalize"],
        ),  # raw is load_array-only
        "bad_percentiles": ((png,), {"percentiles": (99, 1)}, ["percentiles"]),
        "bad_background": ((png,), {"background": (1, 2)}, ["background"]),
    }


BAD_NAMES = [
    "truncated_png", "truncated_jpeg", "truncated_tiff", "garbage", "empty_bytes", "empty_file",
    "empty_filelike", "missing", "directory", "bomb_small_limit", "bomb_png_header", "bomb_tiff_header",
    "unsupported_type", "none_source", "array_ndim1", "array_ndim5", "array_complex", "array_object",
    "array_zero", "pil_zero", "all_nan", "text_file", "too_many_channels", "channel_out_of_range",
    "negative_channel", "bad_projection", "bad_normalize", "bad_percentiles", "bad_background",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_NAMES)
def test_bad_inputs_raise_one_line_errors(tmp_path, case):
    args, kwargs, phrases = _bad_cases(tmp_path)[case]
    with pytest.raises(BioresImageError) as exc:
        load_image(*args, **kwargs)
    assert_error(exc, *phrases)
    if case not in (
        "bad_normalize",
        "too_many_channels",
    ):  # both are valid for load_array
        args, kwargs, _ = _bad_cases(tmp_path)[case]  # fresh file-like objects
        with pytest.raises(BioresImageError) as exc2:
            load_array(*args, **kwargs)
        assert_error(exc2, *phrases)
    if case.startswith("truncated") or case in ("garbage", "bomb_png_header"):
        assert exc.value.__cause__ is not None  # re-raised from the library error
    if case.startswith("bad_") or case in ("too_many_channels", "negative_channel"):
        assert isinstance(exc.value, ImageOptionError) and isinstance(exc.value, BioresConfigError)


@pytest.mark.parametrize(
    "case", ["garbage", "empty_bytes", "missing", "directory", "bomb_small_limit", "bomb_tiff_header",
             "unsupported_type", "array_ndim5", "pil_zero"],
)  # fmt: skip
def test_image_size_has_the_same_guards(tmp_path, case):
    args, kwargs, phrases = _bad_cases(tmp_path)[case]
    kwargs = {k: v for k, v in kwargs.items() if k == "max_pixels"}
    with pytest.raises(BioresImageError) as exc:
        image_size(*args, **kwargs)
    assert_error(exc, *phrases)


def test_pillow_own_decompression_bomb_is_converted(monkeypatch):
    data = pil_bytes(Image.fromarray(noise(64, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow raises above 2 * 100 pixels
    with pytest.raises(BioresImageError) as exc:
        load_array(data, max_pixels=None)
    assert_error(exc, "decompression bomb")
    assert isinstance(exc.value.__cause__, Image.DecompressionBombError)


def test_extreme_aspect_ratio_and_defaults_are_fine():
    thin = np.zeros((1, 5000), np.uint8)
    assert load_image(thin).size == (5000, 1)
    assert DEFAULT_MAX_PIXELS == 178_956_970
    with pytest.raises(BioresImageError) as exc:
        load_array(np.zeros((4, 4, 5), np.uint8), channels=[0, 1, 2, 3], keep_channels=False)
    assert_error(exc, "too many channels")


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    c=st.sampled_from([None, 1, 2, 3, 5]),
    dtype=st.sampled_from(["uint16", "int16", "int32", "float32", "float64"]),
    mode=st.sampled_from(["auto", "minmax", "percentile", "none"]),
    seed=st.integers(0, 2**16),
)
def test_property_any_numeric_array_gives_uint8_rgb(h, w, c, dtype, mode, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if c is None else (h, w, c)
    arr = (rng.standard_normal(shape) * 1000).astype(dtype)
    out = load_array(arr, normalize=mode, keep_channels=False)
    assert out.dtype == np.uint8 and out.shape[2] == 3 and out.ndim == 3
    im = load_image(arr, normalize=mode)
    assert im.mode == "RGB" and im.size == image_size(arr) == (
        out.shape[1],
        out.shape[0],
    )
