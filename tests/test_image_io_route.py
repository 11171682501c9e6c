"""image_io's one route for every input kind: tensors, lazy / closed PIL images, EXIF, PNG
checksums, non-finite values, constant images, short arrays, ``copy=False`` and ``verify=True``.

Rules: docs/image_loading.md. Inputs are built on the fly, as in test_image_io.py.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_image_io import assert_error, noise, pil_bytes, tiff_bytes

from biores_plugin.errors import BioresImageError
from biores_plugin.image_io import ImageOptionError, image_size, load_array, load_image


def test_nonfinite_rule_is_the_same_for_arrays_tensors_and_files():
    import torch

    arr = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    arr[0, 0], arr[0, 1], arr[0, 2] = np.nan, np.inf, -np.inf
    for source in (arr, torch.from_numpy(arr), tiff_bytes(arr), Image.fromarray(arr)):
        with pytest.raises(BioresImageError) as exc:
            load_array(source)
        assert_error(exc, "3 non-finite", "nonfinite=")
        zero = load_array(source, nonfinite="zero")[..., 0]
        assert tuple(zero[0, :3]) == (0, 0, 0) and zero[-1, -1] == 255
        clip = load_array(source, nonfinite="clip")[..., 0]
        assert tuple(clip[0, :3]) == (0, 255, 0) and clip[-1, -1] == 255
    raw = load_array(arr, normalize="raw", nonfinite="clip")[..., 0]
    finite = arr[np.isfinite(arr)]
    assert tuple(raw[0, :3]) == (finite.min(), finite.max(), finite.min())
    assert not load_array(arr, normalize="raw", nonfinite="zero")[0, :3].any()
    with pytest.raises(ImageOptionError, match="nonfinite"):
        load_array(arr, nonfinite="nan")


def test_constant_images_keep_their_level():
    cases = [
        (np.full((4, 5), 65535, np.uint16), 255),
        (np.full((4, 5), 40000, np.uint16), 156),  # round(40000 / 257)
        (np.full((4, 5), 0.25, np.float32), 64),
        (np.full((4, 5), 7.5, np.float32), 255),  # floats outside [0, 1] are clipped
        (np.full((4, 5), -3.0, np.float64), 0),
        (np.full((4, 5), 0, np.int16), 128),  # the middle of int16's range
        (np.full((4, 5), 200, np.uint8), 200),  # uint8 is never rescaled
    ]
    for arr, level in cases:
        for mode in ("auto", "minmax", "percentile", "none"):
            assert np.all(load_array(arr, normalize=mode) == level), (arr.dtype, arr.flat[0], mode)
    rgb16 = np.stack([np.arange(20, dtype=np.uint16).reshape(4, 5) * 1000, np.full((4, 5), 40000, np.uint16)], -1)
    out = load_array(rgb16, normalize="minmax")
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and np.all(out[..., 1] == 156)
    assert np.all(np.asarray(load_image(tiff_bytes(np.full((6, 7), 65535, np.uint16)))) == 255)


def test_tensor_layouts_dtypes_and_errors():
    import torch

    rgb = noise(6, 10)
    chw = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    for source in (chw, chw.contiguous(), torch.from_numpy(rgb.copy()), chw.float() / 255, chw.double() / 255):
        np.testing.assert_array_equal(load_array(source, keep_channels=False), rgb)
        assert image_size(source) == (10, 6)
    np.testing.assert_array_equal(load_array(torch.from_numpy(rgb[..., 0].copy()))[..., 0], rgb[..., 0])
    assert load_array(torch.zeros(8, 8, 3)).shape == (8, 8, 3)  # only the last axis looks like RGB
    assert load_array(torch.zeros(3, 8, 8)).shape == (8, 8, 3)
    assert load_array(torch.full((2, 2), 0.5, dtype=torch.float16))[0, 0, 0] == 128
    assert load_array(torch.ones(4, 4, dtype=torch.bool))[0, 0, 0] == 255
    assert load_array(torch.zeros(3, 4, 4, requires_grad=True)).shape == (4, 4, 3)
    for bad, phrase in [
        (torch.zeros(2, 3, 4, 4), "pass a batch as single images"),
        (torch.zeros(16, 16, 16), "tensor images must be"),
        (torch.zeros(5), "tensor images must be"),
        (torch.zeros(3, 4, 4, dtype=torch.complex64), "complex"),
        (torch.zeros(3, 4, 4).to_sparse(), "sparse"),
        (torch.zeros(3, 4, 4, device="meta"), "meta"),
        (torch.zeros(3, 0, 4), "zero-sized"),
    ]:
        with pytest.raises(BioresImageError) as exc:
            load_image(bad)
        assert_error(exc, "<tensor>", phrase)


def test_copy_false_shares_what_it_can():
    import torch

    rgb = noise(5, 6)
    assert np.shares_memory(load_array(rgb, copy=False), rgb)
    assert not np.shares_memory(load_array(rgb), rgb)
    tensor = torch.from_numpy(rgb.copy())
    assert np.shares_memory(load_array(tensor, copy=False), tensor.numpy())
    flipped = load_array(rgb[::-1], copy=False)
    assert min(flipped.strides) > 0 and np.array_equal(flipped, rgb[::-1])
    im = Image.fromarray(rgb)
    assert load_image(im, copy=False) is im and load_image(im) is not im
    gray = Image.fromarray(rgb[..., 0])
    assert load_image(gray, copy=False).mode == "RGB" and gray.mode == "L"


def test_lazy_and_closed_pil_images(tmp_path):
    arr = noise(30, 40)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    data = path.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    np.testing.assert_array_equal(load_array(Image.open(path)), arr)
    for im in (Image.open(tmp_path / "cut.png"),):
        assert image_size(im) == (40, 30)  # the header is fine
        with pytest.raises(BioresImageError) as exc:
            load_image(im)
        assert_error(exc, "<PIL image>", "truncated")
    closed = Image.open(path)
    closed.load()
    closed.close()
    with open(path, "rb") as fh:
        handle = Image.open(fh)
    with Image.open(path) as exited:
        pass
    for im, phrase in (
        (closed, "is closed"),
        (handle, "file of the lazily opened"),
        (exited, "file of the lazily opened"),
    ):
        for call in (load_image, load_array, image_size):
            with pytest.raises(BioresImageError) as exc:
                call(im)
            assert_error(exc, phrase)


def test_exif_is_the_same_by_path_bytes_and_pil(tmp_path):
    im = Image.fromarray(noise(12, 20))
    exif = im.getexif()
    exif[0x0112] = 6
    path = tmp_path / "r.jpg"
    im.save(path, exif=exif.tobytes(), quality=95)
    by_path = np.asarray(load_image(path))
    assert by_path.shape == (20, 12, 3)
    loaded = Image.open(path)
    loaded.load()
    for source in (path.read_bytes(), Image.open(path), loaded):
        np.testing.assert_array_equal(np.asarray(load_image(source)), by_path)
        assert image_size(source) == (12, 20)


def test_png_checksums_and_verified_size(tmp_path):
    data = pil_bytes(Image.fromarray(noise(40, 50)))
    flipped = bytearray(data)
    flipped[int(len(data) * 0.6)] ^= 0x10
    for source in (bytes(flipped), Image.open(io.BytesIO(bytes(flipped)))):
        with pytest.raises(BioresImageError) as exc:
            load_image(source)
        assert_error(exc, "checksum")
    cut = data[: len(data) // 2]
    assert image_size(cut) == (50, 40)
    with pytest.raises(BioresImageError) as exc:
        image_size(cut, verify=True)
    assert_error(exc, "truncated")
    assert image_size(data, verify=True) == (50, 40)
    with pytest.raises(BioresImageError) as exc:
        image_size(np.full((3, 3), np.nan, np.float32), verify=True)
    assert_error(exc, "non-finite")


def test_short_rgb_arrays_are_hwc():
    row = noise(1, 500)
    assert load_image(row).size == (500, 1) and image_size(row) == (500, 1)
    two = noise(2, 7)
    np.testing.assert_array_equal(load_array(two), two)  # was read as 2 channels of 7x3 pixels
    assert load_array(np.zeros((3, 5, 7), np.uint8)).shape == (5, 7, 3)  # first axis 3, last 7: CxHxW
    assert load_array(np.zeros((2, 9, 3), np.uint8)).shape == (2, 9, 3)  # both short, last looks like RGB
