"""image_io on TIFF and high-bit-depth inputs: 16-bit / float normalisation, channels, stacks, palettes."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from image_io_helpers import RNG, assert_error, noise, pil_bytes, tiff_bytes
from PIL import Image

from biores_plugin.errors import BioresImageError
from biores_plugin.image_io import (
    image_size,
    load_array,
    load_image,
)

# ----------------------------------------------------------------------------- 16-bit and float


def test_16bit_png_and_tiff_normalisation():
    ramp = np.linspace(100, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)
    png = pil_bytes(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(png)).mode == "I;16"
    tif = tiff_bytes(ramp)
    big_endian = tiff_bytes(ramp, byteorder=">")
    for data in (png, tif, big_endian):
        mm = load_array(data, normalize="minmax")[..., 0]
        assert mm.dtype == np.uint8 and mm.min() == 0 and mm.max() == 255
        assert mm[0, 0] == 0 and mm[-1, -1] == 255 and np.all(np.diff(mm.ravel().astype(int)) >= 0)
        none = load_array(data, normalize="none")[..., 0]
        np.testing.assert_array_equal(none, np.rint(ramp / 257).astype(np.uint8))
        np.testing.assert_array_equal(load_array(data, normalize=None), load_array(data, normalize="none"))
        raw = load_array(data, normalize="raw")
        assert raw.dtype == np.float32 and raw.shape == (64, 64, 1)
        np.testing.assert_array_equal(raw[..., 0], ramp)
    # percentile clipping: a single bright outlier does not squash the rest of the range
    spiky = ramp.copy()
    spiky[0, 0] = 65000
    data = tiff_bytes(spiky)
    mm = load_array(data, normalize="minmax")[..., 0]
    pc = load_array(data, normalize="percentile", percentiles=(1, 99))[..., 0]
    auto = load_array(data)[..., 0]
    assert mm[0, 0] == 255 and mm[-1, -1] < 20  # min-max: the outlier eats the range
    assert pc[0, 0] == 255 and pc[-1, -1] == 255 and pc[0, 1] == 0  # clipped at both ends
    assert abs(int(pc[32, 0]) - 128) <= 8
    assert abs(int(auto[32, 0]) - 128) <= 8  # auto = percentile (0.5, 99.5) for 16-bit


def test_constant_16bit_image_keeps_its_level_without_warnings():
    # was: maps to 0 (black); the documented rule now is the fixed scale, 1234 / 257 -> 5
    const = np.full((10, 12), 1234, np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in ("auto", "minmax", "percentile"):
            out = load_array(tiff_bytes(const), normalize=mode)
            assert out.dtype == np.uint8 and np.all(out == 5)
        assert np.all(np.asarray(load_image(const)) == 5)


def test_float32_tiff_unit_range_other_range_and_nan():
    unit = np.linspace(0, 1, 50, dtype=np.float32).reshape(5, 10)
    out = load_array(tiff_bytes(unit))[..., 0]
    np.testing.assert_array_equal(out, np.rint(unit * 255).astype(np.uint8))
    wide = (unit * 1000 - 300).astype(np.float32)
    mm = load_array(tiff_bytes(wide), normalize="minmax")[..., 0]
    assert mm.min() == 0 and mm.max() == 255
    assert load_array(tiff_bytes(wide))[..., 0].max() == 255  # auto -> percentile
    clipped = load_array(tiff_bytes(wide), normalize="none")[..., 0]
    assert clipped[0, 0] == 0 and clipped[-1, -1] == 255  # clip to [0, 1]
    bad = wide.copy()
    bad[0, 0], bad[0, 1], bad[0, 2] = np.nan, np.inf, -np.inf
    # was: mapped silently by default; now an error unless nonfinite="clip" asks for this mapping
    with pytest.raises(BioresImageError, match="3 non-finite"):
        load_array(tiff_bytes(bad), normalize="minmax")
    res = load_array(tiff_bytes(bad), normalize="minmax", nonfinite="clip")[..., 0]
    assert tuple(res[0, :3]) == (0, 255, 0)  # NaN -> low, +inf -> high, -inf -> low
    assert res[0, 3] == 0 and res[-1, -1] == 255  # statistics use the finite values only


# ----------------------------------------------------------------------------- multi-channel and stacks


@pytest.mark.parametrize("n", [2, 4, 5])
def test_multichannel_tiff_cyx(n):
    chans = np.stack([np.full((6, 7), 1000 * (i + 1), np.uint16) for i in range(n)])
    chans[:, 0, 0] = 0  # every channel spans 0..1000*(i+1), so min-max gives 0 and 255
    data = tiff_bytes(chans, photometric="minisblack", metadata={"axes": "CYX"})
    kept = load_array(data, normalize="minmax")
    assert kept.shape == (6, 7, n)
    assert np.all(kept[1, 1] == 255) and np.all(kept[0, 0] == 0)
    rgb = load_array(data, keep_channels=False, normalize="minmax")
    assert rgb.shape == (6, 7, 3)
    if n == 2:
        assert tuple(rgb[1, 1]) == (255, 255, 0)  # two channels -> R, G and a zero B
    else:
        assert tuple(rgb[1, 1]) == (255, 255, 255)  # first three channels
    assert load_image(data).size == (7, 6)


def test_channel_selection():
    chans = np.zeros((5, 4, 6), np.uint16)
    for i in range(5):
        chans[i, 1, 1] = 100 * (i + 1)  # marker pixel, so each channel normalises to 0/255
        chans[i, 2, 2 + (i % 3)] = 50 * (i + 1)
    data = tiff_bytes(chans, photometric="minisblack", metadata={"axes": "CYX"})
    two = load_array(data, channels=[0, 2], keep_channels=False, normalize="minmax")
    assert tuple(two[1, 1]) == (255, 255, 0)
    assert tuple(two[2, 2]) == (128, 0, 0) and tuple(two[2, 4]) == (0, 128, 0)
    one = load_image(data, channels=3, normalize="minmax")
    assert one.getpixel((1, 1)) == (255, 255, 255) and one.getpixel((2, 2)) == (
        128,
        128,
        128,
    )
    three = load_array(data, channels=(4, 1, 0), keep_channels=False, normalize="minmax")
    assert tuple(three[2, 2]) == (0, 0, 128) and tuple(three[2, 3]) == (128, 128, 0)
    four = load_array(data, channels=[0, 1, 2, 3], normalize="minmax")  # kept channels: no RGB limit
    assert four.shape == (4, 6, 4)
    # selecting from a plain RGB image
    rgb = noise(4, 4)
    np.testing.assert_array_equal(load_array(rgb, channels=[1])[..., 0], rgb[..., 1])


def test_zstack_projection_and_axes():
    stack = RNG.integers(0, 60000, (6, 8, 9)).astype(np.uint16)
    data = tiff_bytes(stack, metadata={"axes": "ZYX"})
    raw = load_array(data, normalize="raw")
    assert raw.shape == (8, 9, 1)
    np.testing.assert_array_equal(raw[..., 0], stack.max(axis=0))
    mean = load_array(data, normalize="raw", projection="mean")[..., 0]
    np.testing.assert_array_equal(mean, np.rint(stack.mean(axis=0)))
    first = load_array(data, normalize="raw", projection="first")[..., 0]
    np.testing.assert_array_equal(first, stack[0])
    # the same 6 planes labelled as channels are kept apart
    assert load_array(tiff_bytes(stack, photometric="minisblack", metadata={"axes": "CYX"})).shape == (8, 9, 6)
    # ImageJ hyperstack Z x C x Y x X: Z reduced, C kept
    zc = RNG.integers(0, 4000, (4, 2, 8, 9)).astype(np.uint16)
    out = load_array(tiff_bytes(zc, imagej=True, metadata={"axes": "ZCYX"}), normalize="raw")
    assert out.shape == (8, 9, 2)
    np.testing.assert_array_equal(out, np.moveaxis(zc.max(axis=0), 0, -1))
    # unlabelled leading axis (tifffile axes "QYX"): short -> channels, long -> stack
    assert load_array(tiff_bytes(stack[:5])).shape == (8, 9, 5)
    assert load_array(tiff_bytes(stack[:4], photometric="minisblack")).shape == (
        8,
        9,
        4,
    )
    long = RNG.integers(0, 60000, (12, 8, 9)).astype(np.uint16)
    np.testing.assert_array_equal(load_array(tiff_bytes(long), normalize="raw")[..., 0], long.max(axis=0))
    assert image_size(tiff_bytes(zc, imagej=True, metadata={"axes": "ZCYX"})) == (9, 8)


def test_rgba_tiff_and_lzw_tiff_fallback():
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[0, 0, 3] = 0
    rgba[1:, :, 3] = 255
    out = load_array(tiff_bytes(rgba, photometric="rgb"), background=(7, 8, 9))
    assert out.shape == (3, 4, 3) and tuple(out[0, 0]) == (7, 8, 9) and tuple(out[2, 2]) == (90, 90, 90)
    # LZW needs imagecodecs in tifffile; Pillow decodes it instead
    arr16 = RNG.integers(100, 4000, (10, 11)).astype(np.uint16)
    lzw = pil_bytes(Image.fromarray(arr16), "TIFF", compression="tiff_lzw")
    np.testing.assert_array_equal(load_array(lzw, normalize="raw")[..., 0], arr16)


def test_tiff_palette_miniswhite_and_stack_limit():
    idx = np.array([[0, 1], [2, 1]], np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, 1] = (65535, 0, 0)
    cmap[:, 2] = (0, 0, 65535)
    pal = load_array(tiff_bytes(idx, photometric="palette", colormap=cmap))
    assert pal.shape == (2, 2, 3)
    assert tuple(pal[0, 1]) == (255, 0, 0) and tuple(pal[1, 0]) == (0, 0, 255)
    white = tiff_bytes(np.array([[0, 255]], np.uint8), photometric="miniswhite")
    assert load_array(white)[0, :, 0].tolist() == [255, 0]
    tall = tiff_bytes(np.zeros((100, 8, 9), np.uint8), photometric="minisblack")
    with pytest.raises(BioresImageError) as exc:  # each plane fits, the whole stack does not
        load_array(tall, max_pixels=100)
    assert_error(exc, "decompression bomb", "(100, 8, 9)")


# ----------------------------------------------------------------------------- numpy / PIL inputs
