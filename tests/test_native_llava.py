"""Native-resolution LLaVA on transformers: processor, packed features, generation, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from biores_plugin.errors import BioresConfigError
from biores_plugin.models.native_llava import BioresLlavaForConditionalGeneration, BioresLlavaProcessor
from biores_plugin.resolution import NativePolicy
from biores_plugin.tiny import build_tiny_llava

WORDS = "how many cells are there ? one two three four yes no striated".split()


def _images(rng, sizes):
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(scope="module")
def clip_model():
    resolution = {
        "image_aspect_ratio": "native",
        "patch_size": 8,
        "merge_size": 1,
        "min_pixels": 16 * 16,
        "max_pixels": 96 * 96,
    }
    return build_tiny_llava(WORDS, resolution=resolution, tower="clip", patch_size=8, image_size=32, seed=1)


@pytest.fixture(scope="module")
def siglip_merge_model():
    return build_tiny_llava(WORDS, seed=2)


def test_each_image_token_expands_to_its_own_count(siglip_merge_model, rng):
    _, processor = siglip_merge_model
    images = _images(rng, [(64, 64), (256, 192), (130, 300)])
    batch = processor(["<image> how many cells ?", "<image> <image> striated ?"], [[images[0]], images[1:]])
    policy = NativePolicy(16, 2, 32 * 32, 512 * 512)
    expected = [policy.visual_tokens(*im.size) for im in images]
    assert batch["num_visual_tokens"].tolist() == expected
    image_id = processor.image_token_id
    assert (batch["input_ids"][0] == image_id).sum() == expected[0]
    assert (batch["input_ids"][1] == image_id).sum() == expected[1] + expected[2]
    assert [tuple(p.shape[1:]) for p in batch["pixel_values"]] == [
        tuple(reversed(policy.resize_target(*im.size))) for im in images
    ]
    assert batch["visual_tokens_per_sample"] == [expected[0], expected[1] + expected[2]]


def test_packed_features_equal_stock_per_image_path(clip_model, rng):
    model, processor = clip_model
    images = _images(rng, [(40, 40), (96, 64), (24, 80)])
    pixels = processor.process_images(images)["pixel_values"]
    with torch.no_grad():
        packed = model.model.get_image_features(list(pixels)).pooler_output
        for one, feats in zip(pixels, packed):
            ref = LlavaStock.features(model, one)
            assert feats.shape == ref.shape
            assert torch.allclose(feats, ref, atol=1e-5)


class LlavaStock:
    @staticmethod
    def features(model, pixel_values):
        """transformers' own path for one image: tower with interpolate_pos_encoding=True."""
        out = model.model.vision_tower(
            pixel_values.unsqueeze(0), interpolate_pos_encoding=True, output_hidden_states=True
        )
        hidden = out.hidden_states[model.config.vision_feature_layer]
        if model.config.vision_feature_select_strategy == "default":
            hidden = hidden[:, 1:]
        return model.model.multi_modal_projector(hidden)[0]


def test_loss_and_gradients_flow_through_packed_images(siglip_merge_model, rng):
    model, processor = siglip_merge_model
    images = _images(rng, [(64, 96), (160, 128)])
    batch = processor(
        ["<image> how many cells ? two", "<image> striated ? yes"], [[images[0]], [images[1]]], padding_side="right"
    )
    model.train()
    try:
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            labels=batch["input_ids"],
        )
        assert torch.isfinite(out.loss)
        out.loss.backward()
        grads = [p.grad for p in model.model.vision_tower.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert model.model.multi_modal_projector.linear_1.weight.grad.abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_batched_generation_equals_one_by_one(siglip_merge_model, rng):
    model, processor = siglip_merge_model
    images = _images(rng, [(64, 64), (224, 160), (96, 256)])
    prompts = ["<image> how many cells ?", "<image> striated ?", "<image> how many cells are there ?"]
    batch = processor(prompts, [[im] for im in images])
    with torch.no_grad():
        together = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            max_new_tokens=5,
            do_sample=False,
        )
    new = together[:, batch["input_ids"].shape[1] :]
    for i, (prompt, image) in enumerate(zip(prompts, images)):
        single = processor([prompt], [[image]])
        with torch.no_grad():
            alone = model.generate(
                input_ids=single["input_ids"],
                attention_mask=single["attention_mask"],
                pixel_values=single["pixel_values"],
                max_new_tokens=5,
                do_sample=False,
            )
        assert alone[0, single["input_ids"].shape[1] :].tolist() == new[i].tolist()


def test_policy_is_saved_and_restored(siglip_merge_model, tmp_path, rng):
    model, processor = siglip_merge_model
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = BioresLlavaForConditionalGeneration.from_pretrained(tmp_path)
    restored = BioresLlavaProcessor.from_pretrained(tmp_path)
    assert restored.resolution == processor.resolution and loaded.resolution == processor.resolution
    assert loaded.model.merge_size == 2
    image = _images(rng, [(200, 120)])[0]
    a, b = processor(["<image> striated ?"], [[image]]), restored(["<image> striated ?"], [[image]])
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["pixel_values"][0], b["pixel_values"][0])
    with torch.no_grad():
        la = model(input_ids=a["input_ids"], attention_mask=a["attention_mask"], pixel_values=a["pixel_values"]).logits
        lb = loaded(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"]).logits
    assert torch.allclose(la, lb, atol=1e-6)
    capped = BioresLlavaProcessor.from_pretrained(tmp_path, max_pixels=64 * 64)
    assert capped(["<image> striated ?"], [[image]])["num_visual_tokens"].item() < a["num_visual_tokens"].item()


def test_fixed_pad_policy_squares_with_mean(tmp_path):
    from biores_plugin.resolution import ResolutionConfig

    _, processor = build_tiny_llava(WORDS)
    pad = BioresLlavaProcessor(
        processor.tokenizer,
        ResolutionConfig(image_aspect_ratio="pad", image_size=64, patch_size=16, merge_size=2),
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    out = pad(["<image> striated ?"], [[Image.new("RGB", (128, 32), (255, 255, 255))]])
    pixels = out["pixel_values"][0]
    assert tuple(pixels.shape) == (3, 64, 64) and out["num_visual_tokens"].item() == 4
    assert abs(float(pixels[:, 0, 0].mean())) < 0.02  # mean-colour padding normalises to ~0
    assert float(pixels[:, 32, 32].mean()) > 0.9  # the white image in the middle


def test_bad_inputs_give_one_line_errors(siglip_merge_model, rng):
    from biores_plugin.resolution import ResolutionConfig

    _, processor = siglip_merge_model
    image = _images(rng, [(64, 64)])[0]
    with pytest.raises(BioresConfigError, match="placeholders"):
        processor(["<image> <image> striated ?"], [[image]])
    with pytest.raises(BioresConfigError, match="anyres"):
        BioresLlavaProcessor(processor.tokenizer, ResolutionConfig(image_aspect_ratio="anyres"))
    with pytest.raises(BioresConfigError, match="unknown image_aspect_ratio"):
        ResolutionConfig(image_aspect_ratio="hires")


def test_image_placement_after_text_round_trips(tmp_path):
    from biores_plugin.resolution import ResolutionConfig

    _, processor = build_tiny_llava(WORDS)
    after = BioresLlavaProcessor(
        processor.tokenizer, processor.resolution, image_mean=[0.5] * 3, image_std=[0.5] * 3, image_placement="after"
    )
    assert after.build_prompt("striated ?", 2) == "striated ? <image><image>"  # contiguous: no separator tokens
    assert processor.build_prompt("striated ?", 1) == "<image>\nstriated ?"
    after.save_pretrained(tmp_path)
    assert BioresLlavaProcessor.from_pretrained(tmp_path).image_placement == "after"
    with pytest.raises(BioresConfigError, match="image_placement"):
        BioresLlavaProcessor(processor.tokenizer, ResolutionConfig(), image_placement="middle")
