"""Training steps with padded against padding-free (packed) language-model batches, in one run.

The synthetic set is rendered at several native sizes (64 to 1536 visual tokens per image with
16 px patches, no merge), drawn at native and at mixed resolution, and batched in one shuffled
order; each batch then trains (forward, backward, AdamW) once padded and once packed on the same
random LLaVA (small SigLIP tower, Llama LM of --text_hidden x --text_layers). Vision encoding is
packed in both. Reports samples/s, padding share, the loss gap, and a SUMMARY line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch  # noqa: E402
from bench_setup import synth_records, tiny_native_llava  # noqa: E402  (on import: sys.path, the hub offline)

SIZES = ("128", "192x128", "256", "384x256", "512x384", "768x512")
MIXED = "native:0.5,256:0.25,128:0.25"


def build(args):
    records = synth_records(args.cache, args.sizes, args.per_size)
    model, processor = tiny_native_llava(
        text_hidden=args.text_hidden, text_layers=args.text_layers, heads=args.heads, vision_layers=2
    )
    return model, processor, records


def build_qwen(args, records_only=False):
    """A random Qwen2-VL (1-layer vision tower, LM of --text_hidden x --text_layers) with its real processor
    classes, saved and loaded back through biores-train's own loader; the synthetic records."""
    import transformers as tf
    from fixtures_models import QWEN2_VL_TEMPLATE, build_tokenizer

    from biores_plugin.train.args import DataArguments, ModelArguments
    from biores_plugin.train.qwen_vl import build_qwen_vl

    records = synth_records(args.cache, args.sizes, args.per_size)
    folder = Path(tempfile.mkdtemp()) / "qwen2_vl"
    tok = build_tokenizer("qwen", vocab_size=512)
    tid = tok.convert_tokens_to_ids
    text = dict(
        vocab_size=len(tok),
        hidden_size=args.text_hidden,
        intermediate_size=4 * args.text_hidden,
        num_hidden_layers=args.text_layers,
        num_attention_heads=args.heads,
        num_key_value_heads=max(1, args.heads // 2),
        max_position_embeddings=8192,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
    )
    half = args.text_hidden // args.heads // 2  # mrope sections (t, h, w) cover half the head dim
    text["rope_parameters"]["mrope_section"] = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    config = tf.Qwen2VLConfig(
        text_config=text,
        vision_config=dict(depth=1, embed_dim=32, hidden_size=args.text_hidden, num_heads=4, patch_size=14),
        image_token_id=tid("<|image_pad|>"),
        video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"),
        vision_end_token_id=tid("<|vision_end|>"),
    )
    torch.manual_seed(0)
    tf.Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    unit = 28 * 28
    image = tf.Qwen2VLImageProcessor(
        patch_size=14, merge_size=2, size={"shortest_edge": 4 * unit, "longest_edge": 1024 * unit}
    )
    tf.Qwen2VLProcessor(
        image_processor=image,
        tokenizer=tok,
        video_processor=tf.Qwen2VLVideoProcessor(patch_size=14),
        chat_template=QWEN2_VL_TEMPLATE,
    ).save_pretrained(folder)
    data = DataArguments(
        data_path="synth:unused", image_aspect_ratio="native", min_pixels=4 * unit, max_pixels=1024 * unit
    )
    model, processor = build_qwen_vl(ModelArguments(model_name_or_path=str(folder)), data)
    return model, processor, records


def features_for(processor, records, spec, seed):
    from biores_plugin.resolution import MixedResolution
    from biores_plugin.train.data import ResolutionDataset

    draws = MixedResolution(spec, seed).draws(len(records))
    dataset = ResolutionDataset(records, processor, draws, {}, 8192)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    return [dataset[i] for i in order]


def to_device(value, device):
    from biores_plugin.vision.kernels import PackedSeqInfo

    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, PackedSeqInfo):
        return PackedSeqInfo(value.cu_seqlens.to(device), value.max_seqlen, value.lengths, value.backend)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    return value


class Runner:
    """One model copy, its optimizer and its collator; ``step`` trains on one batch and times it."""

    def __init__(self, model, trainer, collate):
        self.model, self.trainer, self.collate = model, trainer, collate
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        self.device = next(model.parameters()).device
        self.losses, self.seconds, self.times = [], 0.0, []

    def step(self, features, timed: bool) -> None:
        start = time.perf_counter()
        batch = self.collate(features)
        if self.device.type != "cpu":
            batch = to_device(batch, self.device)
            if "biores_packing" in batch:
                batch["cu_seq_lens_q"] = batch["cu_seq_lens_k"] = batch["biores_packing"].cu_seqlens
        loss = self.trainer.compute_loss(self.model, batch)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if timed:
            self.times.append(time.perf_counter() - start)
            self.seconds += self.times[-1]
        self.losses.append(float(loss.detach()))


def compare(model, processor, trainer, features, batch_size, label, padded_collate=None, packed_for=None):
    """Padded against packed steps on the same batches; ``packed_for(twin)`` gives the packed collator."""
    import copy

    from biores_plugin.train.data import ImageListCollator
    from biores_plugin.train.packing import PackingCollator, enable_lm_packing, padding_fraction

    padded_collate = padded_collate or ImageListCollator(processor.tokenizer.pad_token_id)
    packed_for = packed_for or (lambda twin: PackingCollator(padded_collate))
    batches = [features[i : i + batch_size] for i in range(0, len(features) - batch_size + 1, batch_size)]
    if len(batches) < 2:
        raise SystemExit(
            f"train_step needs at least 2 batches (the first warms up): {len(features)} samples, batch {batch_size}"
        )
    pad = sum(padding_fraction(padded_collate(b)) * max(len(f["input_ids"]) for f in b) * len(b) for b in batches)
    slots = sum(max(len(f["input_ids"]) for f in b) * len(b) for b in batches)
    model.config.text_config._attn_implementation = "sdpa"
    twin = copy.deepcopy(model)  # same weights; the packed run trains this copy
    backend = enable_lm_packing(twin)
    packed_collate = packed_for(twin)
    padded, packed = Runner(model, trainer, padded_collate), Runner(twin, trainer, packed_collate)
    for i, features_i in enumerate(batches):  # interleaved, alternating order: machine noise hits both
        for runner in (padded, packed) if i % 2 else (packed, padded):
            runner.step(features_i, timed=i > 0)  # the first step warms allocators and kernels
    del twin
    packed_pad = max(padding_fraction(packed_collate(b)) for b in batches)
    samples = batch_size * (len(batches) - 1)
    gap = max(abs(a - b) for a, b in zip(padded.losses, packed.losses))
    tokens = [len(f["input_ids"]) for f in features]
    ratios = sorted(a / b for a, b in zip(padded.times, packed.times))  # per batch: both ran it back to back
    median, low, high = ratios[len(ratios) // 2], ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
    print(
        f"{label:8s} tokens/sample {min(tokens)}..{max(tokens)}  padded {samples / padded.seconds:6.2f} samples/s "
        f"(pad {100 * pad / slots:4.1f}%)  packed[{backend}] {samples / packed.seconds:6.2f} samples/s (pad "
        f"{100 * packed_pad:.1f}%)  "
        f"median {median:.2f}x per batch (quartiles {low:.2f}..{high:.2f}, {len(ratios)} batches), "
        f"total {padded.seconds / packed.seconds:.2f}x  max loss gap {gap:.1e}"
    )
    return median, 100 * pad / slots, 100 * packed_pad, gap, (low, high)


def qwen_section(args, trainer_cls, training_args):
    from biores_plugin.train.qwen_packing import QwenPackingCollator
    from biores_plugin.train.qwen_vl import QwenVLCollator

    model, processor, records = build_qwen(args)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
    model.to(args.device, dtype).train()
    trainer = trainer_cls(model=model, args=training_args)
    collate = QwenVLCollator(processor.tokenizer.pad_token_id, model.config.image_token_id)
    print(
        f"qwen2_vl: {len(records)} samples, batch {args.batch_size}, LM {args.text_hidden}x{args.text_layers}, "
        f"{args.device} {dtype}"
    )
    native = compare(
        model,
        processor,
        trainer,
        features_for(processor, records, None, args.seed),
        args.batch_size,
        "q-native",
        collate,
        lambda twin: QwenPackingCollator(collate, twin),
    )
    mixed = compare(
        model,
        processor,
        trainer,
        features_for(processor, records, args.mixed_resolution, args.seed),
        args.batch_size,
        "q-mixed",
        collate,
        lambda twin: QwenPackingCollator(collate, twin),
    )
    print(
        f"SUMMARY packed-qwen {native[0]:.2f}x samples/s, pad {native[2]:.0f}% (quartiles "
        f"{native[4][0]:.2f}..{native[4][1]:.2f}; "
        f"padded batches {native[1]:.0f}%; "
        f"mixed {mixed[0]:.2f}x, padded {mixed[1]:.0f}%; max loss gap {max(native[3], mixed[3]):.1e})"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(SIZES), help="native sizes of the synthetic set (W or WxH)")
    ap.add_argument("--per_size", type=int, default=2, help="images per generator and size (4 generators)")
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--text_hidden", type=int, default=256)
    ap.add_argument("--text_layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mixed_resolution", default=MIXED)
    ap.add_argument("--cache", default=None, help="folder for the rendered synthetic sets")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--dtype", default=None, choices=("float32", "bfloat16"), help="default: bfloat16 on CUDA, else float32"
    )
    ap.add_argument("--cpu-smoke", action="store_true", help="two small sizes, a tiny LM: a quick crash test")
    ap.add_argument(
        "--model",
        default="both",
        choices=("both", "llava", "qwen"),
        help="LLaVA (packed-lm), Qwen2-VL (packed-qwen) or both",
    )
    args = ap.parse_args(argv)
    if args.cpu_smoke:
        args.device, args.sizes, args.text_hidden, args.text_layers, args.batch_size = "cpu", "128,256", 64, 1, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from biores_plugin.train.args import TrainingArguments
    from biores_plugin.train.trainer import BioresTrainer

    training_args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=args.device == "cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.model in ("both", "qwen"):
        qwen_section(args, BioresTrainer, training_args)
    if args.model == "qwen":
        return 0
    model, processor, records = build(args)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
    model.to(args.device, dtype).train()
    trainer = BioresTrainer(model=model, args=training_args)
    print(
        f"train_step: {len(records)} samples, batch {args.batch_size}, LM {args.text_hidden}x{args.text_layers}, "
        f"{args.device} {dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    native = compare(
        model, processor, trainer, features_for(processor, records, None, args.seed), args.batch_size, "native"
    )
    mixed = compare(
        model,
        processor,
        trainer,
        features_for(processor, records, args.mixed_resolution, args.seed),
        args.batch_size,
        "mixed",
    )
    print(f"mixed: {mixed[0]:.2f}x samples/s, padded batches {mixed[1]:.0f}% padding")
    print(
        f"SUMMARY packed-lm {native[0]:.2f}x samples/s (quartiles {native[4][0]:.2f}..{native[4][1]:.2f}), pad "
        f"{native[2]:.0f}% "
        f"(padded batches {native[1]:.0f}%; mixed {mixed[0]:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
