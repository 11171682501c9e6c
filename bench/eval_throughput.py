"""Evaluation throughput, in one run: biores_llava against lmms-eval's llava_hf, and packed scoring.

1. stock: the tiny random LLaVA-1.5 of ``tests/fixtures_models.py`` (real classes, hub key layout),
   the same greedy ``generate_until`` requests through lmms-eval's ``llava_hf`` and ``biores_llava``
   at the checkpoint's own resolution: samples/s and whether every output is identical.
2. native: a random biores LLaVA at native resolution (images of 64 to 1536 visual tokens), one
   batched scoring forward (what loglikelihood requests need) right-padded against packed
   (``pack_batch`` + ``biores_varlen_lm``): samples/s and the largest logit gap. SUMMARY at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_setup import tiny_native_llava  # noqa: E402  (on import: sys.path, the hub offline)
from PIL import Image  # noqa: E402

QUESTIONS = ["What is shown in the image?", "Is there a lesion?", "Which organ is abnormal?", "What modality is this?"]
# lmms-eval's llava_hf renders string content; llava-hf's hub template renders images only from
# structured parts, so llava_hf gets this string template (the same prompt text the hub one gives)
STRING_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() + ': ' + m['content'] + ' ' }}{% endfor %}{% if "
    "add_generation_prompt %}ASSISTANT:{% endif %}"
)
NATIVE_SIZES = [(128, 128), (192, 128), (256, 256), (384, 256), (512, 384), (768, 512)]


def images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def stock_comparison(n: int, max_new_tokens: int, rounds: int) -> str:
    import fixtures_models as fm
    from lmms_eval.api.instance import Instance

    folder = fm.build_llava(Path(tempfile.mkdtemp()))
    docs = [
        {"image": im, "question": QUESTIONS[i % len(QUESTIONS)]}
        for i, im in enumerate(images([(56 + 24 * (i % 5), 56 + 16 * (i % 3)) for i in range(n)]))
    ]
    gen = {"max_new_tokens": max_new_tokens, "temperature": 0, "until": []}
    requests = [
        Instance(
            "generate_until",
            (d["question"], dict(gen), lambda doc: [doc["image"]], i, "bench", "test"),
            i,
            {"task": "bench", "doc_id": i, "repeats": 1},
        )
        for i, d in enumerate(docs)
    ]

    def batch():
        return [
            Instance(r.request_type, (r.args[0], dict(gen), *r.args[2:]), r.idx, dict(r.metadata)) for r in requests
        ]

    from lmms_eval.models.simple.llava_hf import LlavaHf

    from biores_plugin.lmms_plugin.biores_llava import BioresLlava

    models = {  # a biores_llava crash propagates: the bench fails, it prints no SUMMARY
        "llava_hf": LlavaHf(
            pretrained=str(folder),
            device="cpu",
            device_map="cpu",
            dtype="float32",
            batch_size=1,
            chat_template=STRING_TEMPLATE,
        ),
        "biores b1": BioresLlava(pretrained=str(folder), device="cpu", batch_size=1, max_new_tokens=max_new_tokens),
        "biores b4": BioresLlava(pretrained=str(folder), device="cpu", batch_size=4, max_new_tokens=max_new_tokens),
    }
    times: dict[str, list[float]] = {name: [] for name in models}
    texts: dict[str, list[str]] = {}
    for model in models.values():
        model.task_dict = {"bench": {"test": docs}}
        model.generate_until([requests[0]])  # warm-up
    for r in range(rounds):  # interleaved, the order alternating: a stall of the shared machine hits one round
        for name in list(models) if r % 2 == 0 else list(reversed(list(models))):
            start = time.perf_counter()
            out = models[name].generate_until(batch())
            times[name].append(time.perf_counter() - start)
            texts[name] = [getattr(o, "text", o) for o in out]
    ref = texts["llava_hf"]
    same = {name: sum(a == b for a, b in zip(texts[name], ref)) for name in ("biores b1", "biores b4")}
    ratio = {name: [t / o for t, o in zip(times["llava_hf"], times[name])] for name in ("biores b1", "biores b4")}

    def spread(values):
        return f"{statistics.median(values):.2f}x [{min(values):.2f}-{max(values):.2f}]"

    print(
        f"stock   {n} requests, {rounds} interleaved rounds; llava_hf (batch 1, its only size) "
        f"{n / statistics.median(times['llava_hf']):.2f} samples/s; biores_llava vs llava_hf, "
        f"median [min-max] of the "
        f"per-round ratios: batch 1 {spread(ratio['biores b1'])}, identical outputs {same['biores b1']}/{n}; "
        f"batch 4 {spread(ratio['biores b4'])}, identical {same['biores b4']}/{n}"
    )
    if same["biores b1"] != n:
        raise SystemExit(
            f"eval_throughput: biores_llava's greedy outputs differ from llava_hf's on "
            f"{n - same['biores b1']}/{n} requests"
        )
    return (
        f"biores_llava {spread(ratio['biores b1'])} llava_hf at batch 1 (identical {same['biores b1']}/{n}), "
        f"{spread(ratio['biores b4'])} at batch 4 (identical {same['biores b4']}/{n})"
    )


def native_scoring(batch_size: int, rounds: int, text_hidden: int, text_layers: int) -> str:
    from biores_plugin.train.packing import enable_lm_packing, pack_batch

    model, processor = tiny_native_llava(text_hidden=text_hidden, text_layers=text_layers)
    pics = images([NATIVE_SIZES[i % len(NATIVE_SIZES)] for i in range(batch_size)], seed=1)
    prompts = [processor.build_prompt("what is shown answer with one word", 1) + " puncta" for _ in pics]
    batch = processor(prompts, [[p] for p in pics], padding_side="right")
    lengths = batch["attention_mask"].sum(1).tolist()
    packed = pack_batch({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
    packed.pop("loss_weights", None)

    def padded_forward():
        return model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"]
        ).logits

    def packed_forward():
        return model(
            input_ids=packed["input_ids"],
            pixel_values=batch["pixel_values"],
            **{k: v for k, v in packed.items() if k != "input_ids"},
        ).logits

    lm_config = model.config.text_config
    with torch.inference_mode():
        backend = enable_lm_packing(model)

        def forward(name):  # the reference runs with transformers' sdpa, the packed batch with the packing backend
            lm_config._attn_implementation = "sdpa" if name == "padded" else backend
            return padded_forward() if name == "padded" else packed_forward()

        ref, got = forward("padded"), forward("packed")
        times: dict[str, list[float]] = {"padded": [], "packed": []}
        for r in range(rounds):  # interleaved, alternating order
            for name in ("padded", "packed") if r % 2 == 0 else ("packed", "padded"):
                start = time.perf_counter()
                forward(name)
                times[name].append(time.perf_counter() - start)
    ratios = [p / q for p, q in zip(times["padded"], times["packed"])]
    padded_rate, packed_rate = (batch_size / statistics.median(times[k]) for k in ("padded", "packed"))
    starts = np.cumsum([0, *lengths])
    gap = max(float((got[0, a:b] - ref[i, : b - a]).abs().max()) for i, (a, b) in enumerate(zip(starts, starts[1:])))
    pad = 1 - sum(lengths) / batch["input_ids"].numel()
    print(
        f"native  scoring batch {batch_size}, tokens/sample {min(lengths)}..{max(lengths)}: padded {padded_rate:.2f} "
        f"samples/s "
        f"(pad {pad:.0%}), packed[{backend}] {packed_rate:.2f} samples/s, "
        f"per-round ratio median {statistics.median(ratios):.2f}x "
        f"[{min(ratios):.2f}-{max(ratios):.2f}] of {rounds}, max logit gap {gap:.1e}"
    )
    return (
        f"packed native {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] padded "
        f"(scoring, pad {pad:.0%} -> 0%, median [min-max] of {rounds} interleaved rounds)"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=12, help="stock generate_until requests")
    ap.add_argument("--max_new_tokens", type=int, default=8)
    ap.add_argument("--batch_size", type=int, default=6, help="native scoring batch")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (ratios: their median and range)")
    ap.add_argument("--text_hidden", type=int, default=256)
    ap.add_argument("--text_layers", type=int, default=4)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    print(f"eval_throughput: torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    stock = stock_comparison(args.samples, args.max_new_tokens, args.rounds)
    native = native_scoring(args.batch_size, args.rounds, args.text_hidden, args.text_layers)
    print(f"SUMMARY eval {stock}; {native}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
