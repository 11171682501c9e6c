"""Resolution policies: property-based checks of the geometry and parity with transformers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.image_processing_utils import select_best_resolution as hf_select_best_resolution
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

from biores_plugin.errors import BioresBudgetError, BioresConfigError
from biores_plugin.resolution.policy import (
    AnyResPolicy,
    DownsamplePolicy,
    FixedPolicy,
    NativePolicy,
    parse_policy,
    policy_from_dict,
    select_best_resolution,
)

sides = st.integers(min_value=1, max_value=6000)
sane_sizes = st.tuples(sides, sides).filter(lambda s: max(s) / min(s) <= 200)


@settings(max_examples=300, deadline=None)
@given(
    size=sane_sizes,
    patch=st.sampled_from([14, 16]),
    merge=st.sampled_from([1, 2]),
    budget=st.tuples(st.integers(1, 64), st.integers(64, 8192)),
)
def test_native_multiples_budget_aspect_and_idempotence(size, patch, merge, budget):
    w, h = size
    factor = patch * merge
    min_pixels, max_pixels = budget[0] * factor * factor, budget[1] * factor * factor
    policy = NativePolicy(patch, merge, min_pixels, max_pixels)
    try:
        out_w, out_h = policy.resize_target(w, h)
    except BioresBudgetError:
        # only when transformers' smart_resize itself breaks the budget or the aspect limit
        hh, ww = hf_smart_resize(h, w, factor, min_pixels, max_pixels)
        assert hh * ww > max_pixels or max(hh, ww) / min(hh, ww) > 200
        return
    assert out_w % factor == 0 and out_h % factor == 0
    assert out_w * out_h <= max_pixels
    # same choice as transformers on every input where it honours its own budget
    hf_h, hf_w = hf_smart_resize(h, w, factor, min_pixels, max_pixels)
    if hf_h * hf_w <= max_pixels:
        assert (out_h, out_w) == (hf_h, hf_w)
    # the minimum is best effort: it holds wherever transformers' grid can meet both bounds
    assert out_w * out_h >= min_pixels or not (min_pixels <= hf_h * hf_w <= max_pixels)
    # aspect ratio error bounded by one grid cell on each side (relative to the output)
    if min(out_w, out_h) >= 4 * factor and min(w, h) >= 4 * factor:
        assert (
            abs(math.log((out_w / out_h) / (w / h)))
            <= math.log((1 + 1.0 / (min(out_w, out_h) / factor - 1)) ** 2) + 1e-9
        )
    # idempotent: an already-resized image that meets the whole budget stays put
    if out_w * out_h >= min_pixels:
        assert policy.resize_target(out_w, out_h) == (out_w, out_h)
    assert policy.visual_tokens(w, h) == (out_w // patch) * (out_h // patch) // (merge * merge)


def test_native_errors_are_one_line():
    with pytest.raises(BioresBudgetError) as err:
        NativePolicy().resize_target(20000, 50)
    assert "aspect ratio" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BioresBudgetError, match="max_pixels"):
        NativePolicy(14, 2, 28 * 28, 28 * 28 * 2).resize_target(199 * 28, 28)
    with pytest.raises(BioresConfigError, match="larger than max_pixels"):
        NativePolicy(min_pixels=10_000, max_pixels=5_000)
    with pytest.raises(BioresBudgetError, match="below one"):
        NativePolicy(14, 2, 1, 100)
    with pytest.raises(BioresConfigError, match="positive"):
        NativePolicy().resize_target(0, 10)


@settings(max_examples=300, deadline=None)
@given(size=st.tuples(sides, sides))
def test_anyres_choice_identical_to_transformers(size):
    w, h = size
    pins = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008], [1344, 336], [336, 1344]]
    assert select_best_resolution((h, w), pins) == tuple(hf_select_best_resolution((h, w), pins))
    policy = AnyResPolicy(tuple(map(tuple, pins)))
    bw, bh = policy.resize_target(w, h)
    assert [bh, bw] in pins
    assert policy.num_crops(w, h) == 1 + (bw // 336) * (bh // 336)


def test_anyres_tokens_match_llava_next_processor():
    from transformers import LlavaNextImageProcessor, LlavaNextProcessor

    from biores_plugin.tiny import build_word_tokenizer

    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}),
        tokenizer=build_word_tokenizer(["a"]),
        patch_size=14,
        vision_feature_select_strategy="default",
    )
    policy = AnyResPolicy()
    for w, h in [(336, 336), (1000, 700), (700, 1000), (3000, 200), (200, 3000), (50, 50), (1344, 1344), (673, 335)]:
        expected = processor._get_number_of_features(h, w, 336, 336)
        assert policy.visual_tokens(w, h) == expected, (w, h)


def test_anyres_max_caps_tokens():
    big = AnyResPolicy(grid_pinpoints=tuple((336 * i, 336 * j) for i in range(1, 7) for j in range(1, 7)))
    capped = AnyResPolicy(big.grid_pinpoints, max_num_patches=4)
    assert capped.name == "anyres_max_4"
    assert capped.visual_tokens(2000, 2000) < big.visual_tokens(2000, 2000)
    assert capped.visual_tokens(2000, 2000) <= 576 + 4 * 576 * 1.1**2 + 2 * 24 * 6
    assert parse_policy("anyres_max_9") == AnyResPolicy(max_num_patches=9)


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
@settings(max_examples=60, deadline=None)
@given(size=st.tuples(sides, sides))
def test_fixed_is_square_and_content_fits(mode, size):
    policy = FixedPolicy(336, mode)
    assert policy.resize_target(*size) == (336, 336)
    assert policy.visual_tokens(*size) == 576
    left, top, w, h = policy.content_box(*size)
    if mode == "pad":
        assert 0 <= left and 0 <= top and left + w <= 336 and top + h <= 336 and max(w, h) == 336
    elif mode == "crop":
        assert min(w, h) == 336
    else:
        assert (w, h) == (336, 336)


@settings(max_examples=300, deadline=None)
@given(size=sane_sizes, cap=st.integers(8, 2048))
def test_downsample_caps_and_never_upsamples(size, cap):
    w, h = size
    policy = DownsamplePolicy(max_side=cap)
    dw, dh = policy.downsample_size(w, h)
    assert dw <= w and dh <= h
    assert max(dw, dh) <= cap or (dw, dh) == (w, h) and max(w, h) <= cap
    if max(w, h) <= cap:
        assert (dw, dh) == (w, h)
    elif min(w, h) * cap / max(w, h) >= 8:
        assert abs((dw / dh) / (w / h) - 1) < 0.15
    assert policy.downsample_size(dw, dh) == (dw, dh)  # idempotent


def test_downsample_pixel_cap_and_composition():
    policy = DownsamplePolicy(max_pixels=100_000)
    dw, dh = policy.downsample_size(1000, 800)
    assert dw * dh <= 100_000 and dw * dh > 95_000
    composed = parse_policy("448", patch_size=14, max_pixels=10**8)
    assert isinstance(composed, DownsamplePolicy) and composed.max_side == 448
    assert composed.resize_target(2000, 1000) == NativePolicy(max_pixels=10**8).resize_target(448, 224)
    assert composed.visual_tokens(2000, 1000) == (448 // 14) * (224 // 14)
    assert composed.name == "448+native"


def test_parse_and_serialise_round_trip():
    for spec in [
        "native",
        "pad",
        "pad448",
        "crop:224",
        "square",
        "stretch",
        "anyres",
        "anyres_max_9",
        "448",
        "downsample:224:pad",
    ]:
        policy = parse_policy(spec)
        assert policy_from_dict(policy.to_dict()) == policy, spec
        hash(policy)
    assert parse_policy("square") == FixedPolicy(336, "crop")
    with pytest.raises(BioresConfigError) as err:
        parse_policy("nativ")
    assert "unknown image_aspect_ratio" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BioresConfigError, match="no option"):
        parse_policy("pad", min_pixels=5)
    with pytest.raises(BioresConfigError, match="unknown policy kind"):
        policy_from_dict({"kind": "zoom"})
