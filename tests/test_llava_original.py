"""biores on the ORIGINAL LLaVA package (llava-torch 1.2.2.post1) with current torch / transformers.

Covers ``python -m biores_plugin.original_llava.train`` end to end on a tiny, fully local LLaVA (llava's own
``LlavaLlamaForCausalLM`` + a tiny CLIP tower folder + a word-level tokenizer), the mixed-resolution draw,
one-line flag validation before any model load, and the patched ``llava.mm_utils.process_images``.

CI installs the package with ``pip install --no-deps llava-torch==1.2.2.post1``; when it is missing these
tests FAIL (they do not skip) and say so.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from llava_pkg_fixture import apply_llava, require_llava
from PIL import Image
from train_flags import offline_env

from biores_plugin.resolution import NativePolicy

PATCH = 14
MIN_PIXELS, MAX_PIXELS = 14 * 14, 112 * 112
# (width, height) of the training images: every one lands on a different native grid.
SIZES = [(60, 40), (100, 70), (30, 90), (56, 56), (120, 48), (44, 80)]
ANSWERS = ["a round nucleus", "two cells", "striated muscle tissue", "no", "a blue stain", "yes"]
MIXED = "native:0.5,56:0.3,28:0.2"
MIXED_SEED = 7


@pytest.fixture(scope="module")
def llava_pkg():
    return apply_llava()


def test_llava_package_is_installed():
    """A plain FAILED (not a skip) with the install command when CI forgot the llava-torch step."""
    require_llava()


def write_conversations(root: Path, sizes, answers, *, seed: int, name: str) -> list[dict]:
    """``root/imgs/<i>.png`` (random RGB at each ``(width, height)``) and LLaVA's conversation JSON ``root/name``."""
    rng = np.random.default_rng(seed)
    (root / "imgs").mkdir()
    data = []
    for i, ((w, h), answer) in enumerate(zip(sizes, answers)):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "imgs" / f"{i}.png")
        data.append(
            {
                "id": str(i),
                "image": f"{i}.png",
                "conversations": [
                    {"from": "human", "value": "<image>\nwhat is shown"},
                    {"from": "gpt", "value": answer},
                ],
            }
        )
    (root / name).write_text(json.dumps(data))
    return data


@pytest.fixture(scope="module")
def world(llava_pkg, tmp_path_factory) -> Path:
    """Data JSON + images, a tiny CLIP tower folder and a tiny llava base model with its tokenizer."""
    from llava.model.language_model.llava_llama import (
        LlavaConfig,
        LlavaLlamaForCausalLM,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    from biores_plugin.tiny import build_word_tokenizer

    root = tmp_path_factory.mktemp("llava_world")
    data = write_conversations(root, SIZES, ANSWERS, seed=0, name="tiny.json")
    # --version plain: "<image>" + answer + "\n"; every word must be in the vocabulary (the pad token is <unk>).
    words = sorted(
        {w for d in data for turn in d["conversations"] for w in turn["value"].replace("<image>", " ").split()}
    )
    tokenizer = build_word_tokenizer(words)

    torch.manual_seed(0)
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=56,
        patch_size=PATCH,
        projection_dim=32,
    )
    CLIPVisionModel(vision).save_pretrained(root / "tower")
    CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}).save_pretrained(
        root / "tower"
    )
    config = LlavaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    LlavaLlamaForCausalLM(config).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    return root


def _cmd(world: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "biores_plugin.original_llava.train",
        "--model_name_or_path",
        str(world / "base"),
        "--version",
        "plain",
        "--vision_tower",
        str(world / "tower"),
        "--mm_projector_type",
        "mlp2x_gelu",
        "--mm_vision_select_layer",
        "-2",
        "--data_path",
        str(world / "tiny.json"),
        "--image_folder",
        str(world / "imgs"),
        "--output_dir",
        str(out),
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "1e-3",
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--dataloader_num_workers",
        "0",
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(world) -> dict[str, tuple[Path, str]]:
    """The native and the mixed-resolution training runs, started together (each on one thread)."""
    jobs = {
        "native": ("--image_aspect_ratio", "native", "--min_pixels", str(MIN_PIXELS), "--max_pixels", str(MAX_PIXELS)),
        "mixed": (
            "--image_aspect_ratio",
            "native",
            "--min_pixels",
            str(MIN_PIXELS),
            "--max_pixels",
            str(MAX_PIXELS),
            "--mixed_resolution",
            MIXED,
            "--seed",
            str(MIXED_SEED),
        ),
    }
    procs = {}
    for name, extra in jobs.items():
        out = world / f"out-{name}"
        log = open(world / f"{name}.log", "w")
        procs[name] = (
            out,
            log,
            subprocess.Popen(
                _cmd(world, out, *extra), stdout=log, stderr=subprocess.STDOUT, env=offline_env(), cwd=world
            ),
        )
    results = {}
    for name, (out, log, proc) in procs.items():
        rc = proc.wait(timeout=300)
        log.close()
        text = (world / f"{name}.log").read_text()
        assert rc == 0, f"{name} training failed (rc={rc}):\n{text[-4000:]}"
        results[name] = (out, text)
    return results


def _events(out: Path, kind: str) -> list[dict]:
    lines = (out / "biores_llava_log.jsonl").read_text().splitlines()
    return [rec for rec in map(json.loads, lines) if rec["event"] == kind]


# ------------------------------------------------------------------------------------------------ training
def test_native_training_via_entry_point(runs):
    out, _ = runs["native"]
    policy = NativePolicy(PATCH, 1, MIN_PIXELS, MAX_PIXELS)

    flags = _events(out, "flags")[-1]  # the flags were parsed into the extended DataArguments
    assert (flags["image_aspect_ratio"], flags["min_pixels"], flags["max_pixels"]) == ("native", MIN_PIXELS, MAX_PIXELS)
    assert {"layernorm_import", "trainer_tokenizer_kwarg", "train_sampler_signature"} <= set(flags["shims"])

    batches = _events(out, "batch")
    assert [b["step"] for b in batches] == [1, 2, 3]
    sizes = [tuple(s) for b in batches for s in b["image_sizes_hw"]]
    expected = [tuple(reversed(policy.resize_target(w, h))) for w, h in SIZES]
    assert sorted(sizes) == sorted(expected)  # one epoch: every image once, each at its own native size
    for b in batches:
        assert b["visual_tokens"] == [(h // PATCH) * (w // PATCH) for h, w in b["image_sizes_hw"]]
    assert any(len({tuple(s) for s in b["image_sizes_hw"]}) > 1 for b in batches)  # mixed sizes within a batch
    assert any(len(set(b["seq_lens"])) > 1 for b in batches)  # hence different sequence lengths

    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)

    from biores_plugin.resolution import ResolutionConfig

    saved = ResolutionConfig.from_pretrained(out)
    assert saved is not None and saved.policy() == policy
    config = json.loads((out / "config.json").read_text())
    assert config["image_aspect_ratio"] == "native"
    assert config["biores"] == saved.to_dict()
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_native_checkpoint_inference(runs, llava_pkg, tmp_path):
    """The saved checkpoint loads with llava's own loader and generates from a native-size image."""
    from llava import mm_utils
    from llava.mm_utils import tokenizer_image_token
    from llava.model.builder import load_pretrained_model

    out, _ = runs["native"]
    tokenizer, model, processor, _ = load_pretrained_model(str(out), None, "llava-tiny", device_map=None, device="cpu")
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 90, 3), dtype=np.uint8))
    pixels = mm_utils.process_images([image], processor, model.config)
    assert [tuple(p.shape) for p in pixels] == [(3, 42, 84)]
    ids = tokenizer_image_token("<image>\nwhat is shown", tokenizer, return_tensors="pt").unsqueeze(0)
    with torch.inference_mode():
        generated = model.generate(ids, images=[pixels[0].to(model.dtype)], max_new_tokens=2, do_sample=False)
    assert generated.shape[0] == 1 and 1 <= generated.shape[1] <= 2


def test_mixed_resolution_draw_is_reproducible_and_logged(runs):
    from biores_plugin.resolution import ResolutionConfig, resolution_label

    out, _ = runs["mixed"]
    config = ResolutionConfig(mixed_resolution=MIXED, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=PATCH)
    mixed = config.mixed(MIXED_SEED)
    draws = _events(out, "draw")
    assert sorted(d["index"] for d in draws) == list(range(len(SIZES)))
    for d in draws:  # the run's draw is exactly the one recomputed from (seed, index)
        level = mixed.draw(d["index"])
        assert d["choice"] == resolution_label(level)
        w, h = SIZES[d["index"]]
        assert tuple(d["size_hw"]) == tuple(reversed(config.level_policy(level).resize_target(w, h)))
    assert len({d["choice"] for d in draws}) > 1
    batches = _events(out, "batch")
    assert sorted(tuple(s) for b in batches for s in b["image_sizes_hw"]) == sorted(tuple(d["size_hw"]) for d in draws)
    assert json.loads((out / "config.json").read_text())["biores"]["mixed_resolution"] == MIXED


def test_llava_flag_errors_are_one_line_too(llava_pkg, tmp_path, capsys):
    """Errors of the full HfArgumentParser pass (LLaVA's own flags) are one line as well, still before model load."""
    from biores_plugin.original_llava.train import main

    base = ["--model_name_or_path", str(tmp_path / "no-model"), "--output_dir", str(tmp_path / "out")]
    assert main([*base, "--image_aspect_ratio", "native", "--not_a_flag", "1"]) == 2
    assert main([*base, "--max_steps", "three"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("biores-llava: error:") for line in err), err
    assert "--not_a_flag" in err[0] and "max_steps" in err[1]


# ------------------------------------------------------------------------------------------------ inference hooks
def test_process_images_native_returns_policy_sized_tensors(llava_pkg):
    from llava import mm_utils
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in SIZES[:4]]
    resolution = {
        "image_aspect_ratio": "native",
        "min_pixels": MIN_PIXELS,
        "max_pixels": MAX_PIXELS,
        "patch_size": PATCH,
    }
    cfg = SimpleNamespace(image_aspect_ratio="native", biores=resolution)
    out = mm_utils.process_images(images, processor, cfg)
    policy = NativePolicy(PATCH, 1, MIN_PIXELS, MAX_PIXELS)
    assert isinstance(out, list) and len(out) == len(images)
    assert [tuple(t.shape) for t in out] == [(3, *reversed(policy.resize_target(*im.size))) for im in images]
    assert len({tuple(t.shape) for t in out}) == len(out)
    # normalised with the tower processor's CLIP mean/std, like LLaVA's own path
    ref = processor.preprocess(images[3], return_tensors="pt")["pixel_values"][0]  # 56x56: native == square
    assert torch.allclose(out[3], ref, atol=0.05)
    # other aspect ratios keep LLaVA's behaviour
    stacked = mm_utils.process_images(images, processor, SimpleNamespace(image_aspect_ratio="pad"))
    assert isinstance(stacked, torch.Tensor) and tuple(stacked.shape) == (4, 3, 56, 56)


def test_tower_forward_honours_native_sizes(world):
    """llava's CLIPVisionTower (no_grad, never interpolate_pos_encoding) now encodes any size, equal to HF's
    per-image ``interpolate_pos_encoding=True`` path; the stock square path is untouched."""
    from llava.model.multimodal_encoder.clip_encoder import CLIPVisionTower
    from transformers import CLIPVisionModel

    tower = CLIPVisionTower(
        str(world / "tower"), SimpleNamespace(mm_vision_select_layer=-2, mm_vision_select_feature="patch")
    )
    hf = CLIPVisionModel.from_pretrained(str(world / "tower")).eval()
    rng = torch.Generator().manual_seed(0)
    images = [torch.randn(3, 42, 84, generator=rng), torch.randn(3, 98, 28, generator=rng)]
    feats = tower(images)
    for img, feat in zip(images, feats):
        with torch.no_grad():
            ref = hf(img.unsqueeze(0), output_hidden_states=True, interpolate_pos_encoding=True).hidden_states[-2][
                :, 1:
            ]
        assert feat.shape == ref.shape and torch.allclose(feat, ref, atol=1e-5)
    square = torch.randn(2, 3, 56, 56, generator=rng)
    with torch.no_grad():
        ref = hf(square, output_hidden_states=True).hidden_states[-2][:, 1:]
    assert torch.allclose(tower(square), ref, atol=1e-6)


# ------------------------------------------------------------------------------------------------ packing
def test_packed_llava_hook_equals_padded(world, llava_pkg):
    """``maybe_pack`` on the splice's padded output: one row, the padded batch's loss and gradients."""
    import copy

    from llava.model.language_model.llava_llama import LlavaLlamaForCausalLM

    from biores_plugin.original_llava.packing import maybe_pack, set_packing

    model = LlavaLlamaForCausalLM.from_pretrained(world / "base", attn_implementation="sdpa").train()
    twin = copy.deepcopy(model)
    lengths = [9, 4, 7]
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(3, 9, model.config.hidden_size, generator=g)
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]
    labels = torch.randint(0, model.config.vocab_size, (3, 9), generator=g).masked_fill(~mask, -100)
    labels[:, :2] = -100  # prompt tokens
    out = (None, None, mask, None, embeds, labels)
    set_packing(False)
    assert maybe_pack(twin, out) is out  # off: llava's own padded batch
    set_packing(True)
    try:
        _, position_ids, attention, _, packed_embeds, packed_labels = maybe_pack(twin, out)
    finally:
        set_packing(False)
    assert packed_embeds.shape == (1, sum(lengths), model.config.hidden_size) and attention is None
    assert position_ids[0].tolist() == [p for n in lengths for p in range(n)]
    padded = model(inputs_embeds=embeds, attention_mask=mask, labels=labels)
    packed = twin(inputs_embeds=packed_embeds, position_ids=position_ids, labels=packed_labels)
    padded.loss.backward()
    packed.loss.backward()
    assert abs(float(padded.loss) - float(packed.loss)) < 1e-5
    pairs = [(a.grad, b.grad) for a, b in zip(model.parameters(), twin.parameters()) if a.grad is not None]
    worst = max(float((a - b).abs().max()) for a, b in pairs)
    assert worst < 1e-5
    joined = twin(inputs_embeds=packed_embeds, position_ids=torch.arange(sum(lengths))[None], labels=packed_labels)
    assert abs(float(joined.loss) - float(padded.loss)) > 1e-4  # without the boundaries the samples would mix


def test_pack_sequences_trains_with_the_padded_loss(world):
    """``--pack_sequences True`` through llava's own train(): one row per step, the padded run's losses (lr 0)."""
    g = torch.Generator().manual_seed(1)  # llava draws the projector unseeded: both runs load this one
    projector = {
        "model.mm_projector.0.weight": torch.randn(64, 32, generator=g) * 0.1,
        "model.mm_projector.0.bias": torch.zeros(64),
        "model.mm_projector.2.weight": torch.randn(64, 64, generator=g) * 0.1,
        "model.mm_projector.2.bias": torch.zeros(64),
    }
    torch.save(projector, world / "projector.bin")
    native = (
        "--image_aspect_ratio",
        "native",
        "--min_pixels",
        str(MIN_PIXELS),
        "--max_pixels",
        str(MAX_PIXELS),
        "--learning_rate",
        "0",
        "--save_strategy",
        "no",
        "--pretrain_mm_mlp_adapter",
        str(world / "projector.bin"),
    )
    procs = {}
    for pack in ("True", "False"):
        out = world / f"out-pack-{pack}"
        cmd = [*_cmd(world, out), *native, "--pack_sequences", pack]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=offline_env(), cwd=world
        )
        procs[pack] = (out, proc)
    losses = {}
    for pack, (out, proc) in procs.items():
        text, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, text[-4000:]
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        losses[pack] = [h["loss"] for h in history if "loss" in h]
    assert len(losses["True"]) == 3 and max(abs(a - b) for a, b in zip(losses["True"], losses["False"])) < 2e-4
    packed = _events(world / "out-pack-True", "packed")
    assert len(packed) == 3 and all(p["rows"] == 1 and p["tokens"] < p["padded_slots"] for p in packed)
    assert not _events(world / "out-pack-False", "packed")
    assert _events(world / "out-pack-True", "flags")[-1]["pack_sequences"] is True
