"""Padding-free LM packing: the packed batch's loss and gradients equal the padded batch's."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from biores_plugin.errors import BioresConfigError
from biores_plugin.train.data import ImageListCollator, Record, ResolutionDataset
from biores_plugin.train.packing import PackingCollator, enable_lm_packing, pack_batch, padding_fraction

WORDS = ["what", "is", "shown", "a", "cell", "nucleus", "tissue", "yes", "no", "long", "answer", "here"]
# very different visual-token counts (16 px patches, 2x2 merge): tiny, wide, tall, large
SIZES = [(32, 32), (320, 64), (64, 256), (256, 256)]


def _png(w: int, h: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def world():
    from biores_plugin.tiny import build_tiny_llava

    model, processor = build_tiny_llava(WORDS, seed=3)
    turns = [
        [("what is shown", "cell", "fine")],
        [("is a nucleus shown", "yes", "coarse"), ("what is here", "a long answer here", "fine")],
        [("what", "tissue", "coarse")],
        [("is tissue shown", "no", "fine")],
    ]
    records = [Record(_png(w, h, i), t, (w, h)) for i, ((w, h), t) in enumerate(zip(SIZES, turns))]
    dataset = ResolutionDataset(records, processor, [0] * len(records), {"fine": 3.0, "coarse": 1.0})
    features = [dataset[i] for i in range(len(dataset))]
    return model, processor, features


def _trainer(model, tmp_path):
    from biores_plugin.train.args import TrainingArguments
    from biores_plugin.train.trainer import BioresTrainer

    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, pack_sequences=False)
    return BioresTrainer(model=model, args=args)


def _loss_and_grads(trainer, model, batch):
    model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("backend", ["biores_varlen_lm", "sdpa", "eager"])
def test_packed_loss_and_grads_equal_padded(world, tmp_path, backend):
    model, processor, features = world
    model.train()
    trainer = _trainer(model, tmp_path)
    collator = ImageListCollator(processor.tokenizer.pad_token_id)
    padded = collator(features)
    lengths = [len(f["input_ids"]) for f in features]
    assert max(lengths) > 4 * min(lengths)  # the point: very different sample lengths
    assert padding_fraction(padded) > 0.3

    model.config.text_config._attn_implementation = "sdpa"
    ref_loss, ref_grads = _loss_and_grads(trainer, model, padded)
    assert enable_lm_packing(model, backend) == backend
    try:
        packed = PackingCollator(collator)(features)
        assert packed["input_ids"].shape == (1, sum(lengths))  # no padding token at all
        assert "attention_mask" not in packed and padding_fraction(packed) == 0.0
        assert packed["position_ids"][0].tolist() == [p for n in lengths for p in range(n)]
        assert packed["cu_seq_lens_q"].tolist() == np.cumsum([0, *lengths]).tolist()
        loss, grads = _loss_and_grads(trainer, model, packed)
    finally:
        model.config.text_config._attn_implementation = "sdpa"
    assert abs(float(loss) - float(ref_loss)) < 1e-5
    assert grads.keys() == ref_grads.keys() and any(".vision_tower." in n for n in grads)
    worst = max(float((grads[n] - ref_grads[n]).abs().max()) for n in grads)
    assert worst < 1e-5, worst


def test_boundaries_carry_no_loss(world):
    _, processor, features = world
    packed = pack_batch(ImageListCollator(processor.tokenizer.pad_token_id)(features))
    starts = packed["cu_seq_lens_q"][:-1].tolist()
    assert all(packed["labels"][0, s] == -100 and packed["loss_weights"][0, s] == 0 for s in starts)
    assert len(packed["pixel_values"]) == len(features)


def test_left_padded_batch_is_refused():
    batch = {"input_ids": torch.tensor([[0, 5, 6], [7, 8, 9]]), "attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]])}
    with pytest.raises(BioresConfigError, match="right-padded"):
        pack_batch(batch)


def test_unknown_backend_is_one_line_error(world):
    with pytest.raises(BioresConfigError, match="LM packing backend"):
        enable_lm_packing(world[0], "flash")


def test_packed_attention_from_position_ids_alone(world):
    """Only restarting position ids (transformers' packed format, no cu_seqlens) still isolates samples."""
    model, processor, features = world
    model.eval()
    packed = pack_batch(ImageListCollator(processor.tokenizer.pad_token_id)(features[:2]))
    enable_lm_packing(model, "biores_varlen_lm")
    try:
        with torch.no_grad():
            both = model(
                input_ids=packed["input_ids"], pixel_values=packed["pixel_values"], position_ids=packed["position_ids"]
            ).logits
            first = model(input_ids=features[0]["input_ids"][None], pixel_values=features[0]["pixel_values"]).logits
    finally:
        model.config.text_config._attn_implementation = "sdpa"
    n = len(features[0]["input_ids"])
    assert torch.allclose(both[0, :n], first[0], atol=1e-5)


def test_biores_train_packs_by_default(synth_small, tmp_path):
    from biores_plugin.train.trainer import train

    out = tmp_path / "run"
    stats = train(
        [
            "--data_path",
            str(synth_small),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "3",
            "--max_samples",
            "6",
            "--report_to",
            "none",
            "--use_cpu",
            "True",
            "--logging_steps",
            "1",
            "--save_strategy",
            "no",
        ]
    )
    assert stats["global_step"] == 2 and np.isfinite(stats["train_loss"])
    saved = json.loads((out / "config.json").read_text())
    assert "biores_varlen_lm" not in json.dumps(saved)  # the packing attention is not baked into the checkpoint


@pytest.mark.parametrize("backend", ["biores_varlen_lm", "sdpa"])
def test_pack_embeds_matches_hf_causal_lm_loss(backend):
    """The original-LLaVA shape (padded embeddings into a HF causal LM with its own loss) packs exactly."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from biores_plugin.train.packing import pack_embeds

    torch.manual_seed(0)
    lm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            attn_implementation="sdpa",
        )
    ).train()
    lengths = [3, 40, 11]
    embeds = torch.randn(3, max(lengths), 32)
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    labels = torch.randint(0, 50, (3, max(lengths))).masked_fill(mask == 0, -100)
    labels[1, :5] = -100  # a prompt
    ref = lm(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss
    params = [p for n, p in lm.named_parameters() if "embed_tokens" not in n]  # inputs_embeds bypass the table
    ref_grads = torch.autograd.grad(ref, params)
    assert enable_lm_packing(lm, backend) == backend
    packed = pack_embeds(embeds, mask, labels)
    assert packed["inputs_embeds"].shape == (1, sum(lengths), 32)
    loss = lm(**packed).loss
    grads = torch.autograd.grad(loss, params)
    assert abs(float(loss.detach()) - float(ref.detach())) < 1e-5
    assert max(float((a - b).abs().max()) for a, b in zip(grads, ref_grads)) < 1e-5


def test_sample_cache_gives_what_preparing_again_gives(world):
    """--sample_cache_mb: a sample seen again comes from memory, equal to preparing it again, and changing what the
    dataset handed out does not change the cache; the least recently used sample goes first past the limit."""
    from biores_plugin.train.data import SampleCache

    _, processor, features = world
    records = [Record(_png(w, h, i), [("what is shown", "cell", "fine")], (w, h)) for i, (w, h) in enumerate(SIZES)]
    plain = ResolutionDataset(records, processor, [0, 64, 0, 128], {})
    cached = ResolutionDataset(records, processor, [0, 64, 0, 128], {}, cache_mb=64)
    for _ in range(2):  # a first epoch prepares, the second is served from memory
        for i in range(len(records)):
            a, b = plain[i], cached[i]
            assert a.keys() == b.keys() and torch.equal(a["input_ids"], b["input_ids"])
            assert all(torch.equal(x, y) for x, y in zip(a["pixel_values"], b["pixel_values"]))
            b["pixel_values"][0].zero_()  # the caller's copy, not the cache's
    assert (cached.cache.hits, cached.cache.misses) == (4, 4)
    assert torch.equal(cached[3]["pixel_values"][0], plain[3]["pixel_values"][0])

    sizes = [SampleCache._bytes(plain[i]) for i in range(4)]
    small = ResolutionDataset(records, processor, [0, 64, 0, 128], {}, cache_mb=(sizes[2] + sizes[3]) / 2**20)
    for i in (0, 1, 2, 3):
        small[i]
    assert small.cache.used <= small.cache.limit and list(small.cache._items) == [(2, 0), (3, 128)]
    with pytest.raises(BioresConfigError, match="sample_cache_mb must be >= 0"):
        SampleCache(-1)
    from biores_plugin.train.args import DataArguments

    with pytest.raises(BioresConfigError, match="sample_cache_mb must be >= 0, got nan"):
        DataArguments(sample_cache_mb=float("nan"))  # refused with the flags, before any model loads
