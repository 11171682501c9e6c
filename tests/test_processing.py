"""Image processors: parity with transformers' processors, token counts, save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, LlavaNextImageProcessor, Qwen2VLImageProcessor

from biores_plugin.errors import BioresBudgetError, BioresConfigError, BioresImageError
from biores_plugin.processing import BioresAnyResImageProcessor, BioresNativeImageProcessor
from biores_plugin.resolution import NativePolicy

# square, landscape, portrait, tiny, exact pinpoints and extreme aspect ratios
SIZES = [
    (336, 336),
    (1000, 700),
    (700, 1000),
    (1344, 1344),
    (673, 335),
    (50, 50),
    (90, 1800),
    (1800, 90),
    (3000, 40),
    (17, 1200),
    (1023, 769),
]


@pytest.fixture(scope="module")
def images(rng):
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]


ANYRES_CFG = dict(
    size={"shortest_edge": 336},
    crop_size={"height": 336, "width": 336},
    image_grid_pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
)


@pytest.mark.parametrize("index", range(len(SIZES)))
def test_anyres_equals_llava_next(images, index):
    ref = LlavaNextImageProcessor(**ANYRES_CFG)([images[index]], return_tensors="pt")
    out = BioresAnyResImageProcessor(**ANYRES_CFG)([images[index]], return_tensors="pt")
    assert out["pixel_values"].shape == ref["pixel_values"].shape
    assert (out["pixel_values"] - ref["pixel_values"]).abs().max().item() <= 1e-5
    assert out["image_sizes"].tolist() == ref["image_sizes"].tolist()


def test_anyres_batch_padding_equals_llava_next(images):
    cfg = dict(
        ANYRES_CFG, image_grid_pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008], [1344, 336]]
    )
    ref = LlavaNextImageProcessor(**cfg)(images, return_tensors="pt")
    out = BioresAnyResImageProcessor(**cfg)(images, return_tensors="pt")
    assert out["pixel_values"].shape == ref["pixel_values"].shape
    assert (out["pixel_values"] - ref["pixel_values"]).abs().max().item() <= 1e-5


def test_anyres_crop_count_matches_policy(images):
    proc = BioresAnyResImageProcessor(**ANYRES_CFG)
    for image in images:
        out = proc([image], do_pad=False)
        assert out["pixel_values"][0].shape[0] == proc.policy.num_crops(*image.size)


def test_native_patches_equal_qwen2vl(images):
    usable = [im for im in images if max(im.size) / min(im.size) <= 200]
    ref = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=512 * 28 * 28)(usable, return_tensors="pt")
    ours = BioresNativeImageProcessor(
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=56 * 56,
        max_pixels=512 * 28 * 28,
        return_format="patches",
    )(usable)
    assert torch.equal(ours["image_grid_thw"], ref["image_grid_thw"])
    assert ours["pixel_values"].shape == ref["pixel_values"].shape
    assert (ours["pixel_values"] - ref["pixel_values"]).abs().max().item() <= 1e-5


def test_native_images_match_policy_and_tokens(images):
    proc = BioresNativeImageProcessor(patch_size=14, merge_size=2, min_pixels=28 * 28, max_pixels=400 * 28 * 28)
    usable = [im for im in images if max(im.size) / min(im.size) <= 200]
    out = proc(usable)
    policy = NativePolicy(14, 2, 28 * 28, 400 * 28 * 28)
    for image, pixels, (gh, gw), tokens in zip(
        usable, out["pixel_values"], out["image_grid_hw"].tolist(), out["num_visual_tokens"].tolist()
    ):
        w, h = policy.resize_target(*image.size)
        assert tuple(pixels.shape) == (3, h, w) and pixels.is_contiguous()
        assert (gh, gw) == (h // 14, w // 14)
        assert (
            tokens == policy.visual_tokens(*image.size) == proc.get_number_of_image_tokens(image.size[1], image.size[0])
        )
    # tokens counted without pixels equal the processor's actual output
    packed = proc(usable, return_format="patches")
    assert packed["pixel_values"].shape[0] == sum(policy.grid(*im.size)[0] * policy.grid(*im.size)[1] for im in usable)


def test_native_normalisation_is_clip(rng):
    array = rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)
    out = BioresNativeImageProcessor(min_pixels=1, max_pixels=10**7)(Image.fromarray(array))["pixel_values"][0]
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    expected = (torch.from_numpy(array).permute(2, 0, 1).float() / 255 - mean) / std
    assert torch.allclose(out, expected, atol=1e-5)


def test_inputs_of_every_kind_agree(rng, tmp_path):
    array = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    proc = BioresNativeImageProcessor(min_pixels=1, max_pixels=10**7)
    outs = [
        proc(x)["pixel_values"][0]
        for x in (Image.fromarray(array), array, torch.from_numpy(array).permute(2, 0, 1), str(path), path.read_bytes())
    ]
    for other in outs[1:]:
        assert torch.equal(outs[0], other)


def test_bad_inputs_raise_one_line_errors():
    proc = BioresNativeImageProcessor()
    with pytest.raises(BioresImageError) as err:
        proc(b"not an image at all")
    assert "\n" not in str(err.value)
    with pytest.raises(BioresBudgetError, match="aspect ratio"):
        proc(Image.new("RGB", (4000, 10)))
    with pytest.raises(BioresConfigError, match="unknown option"):
        BioresNativeImageProcessor(max_pixel=5)
    with pytest.raises(BioresConfigError, match="unknown option"):
        proc(Image.new("RGB", (50, 50)), min_pixel=3)
    with pytest.raises(BioresConfigError, match="return_format"):
        proc(Image.new("RGB", (50, 50)), return_format="grid")
    with pytest.raises(BioresConfigError, match="agree"):
        BioresAnyResImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 336, "width": 336})(
            Image.new("RGB", (50, 50))
        )


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (BioresNativeImageProcessor, dict(patch_size=16, merge_size=2, min_pixels=1024, max_pixels=65536)),
        (BioresAnyResImageProcessor, dict(ANYRES_CFG, patch_size=14)),
    ],
)
def test_save_and_auto_load_round_trip(tmp_path, cls, kwargs):
    import biores_plugin

    biores_plugin.register()  # nothing registers at import
    proc = cls(**kwargs)
    proc.save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is cls
    assert loaded.to_dict() == proc.to_dict()
    image = Image.new("RGB", (300, 200), (10, 200, 30))
    a, b = proc(image), loaded(image)
    assert all(torch.equal(x, y) for x, y in zip(a["pixel_values"], b["pixel_values"]))


def test_batches_split_and_uint8_inputs_are_not_copied(rng):
    from biores_plugin.processing import to_uint8_hwc

    batch = rng.integers(0, 256, (2, 40, 60, 3), dtype=np.uint8)
    proc = BioresNativeImageProcessor(min_pixels=1, max_pixels=10**7)
    for stacked in (batch, torch.from_numpy(batch)):  # 4-D: a batch, as transformers reads it
        out = proc(stacked)
        assert out["image_sizes"].tolist() == [[42, 56], [42, 56]]
        ref = proc([Image.fromarray(batch[0]), Image.fromarray(batch[1])])
        assert all(torch.equal(a, b) for a, b in zip(out["pixel_values"], ref["pixel_values"]))
    array = batch[0]
    assert to_uint8_hwc(array).data_ptr() == array.ctypes.data  # zero-copy, as before
    chw = torch.from_numpy(array).permute(2, 0, 1)
    assert to_uint8_hwc(chw).data_ptr() == chw.data_ptr()
    flipped = to_uint8_hwc(array[::-1])  # negative strides: copied, not a raw torch error
    assert torch.equal(flipped, torch.from_numpy(np.ascontiguousarray(array[::-1])))
