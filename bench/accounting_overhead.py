"""What biores' visual-token accounting costs an lmms-eval run (issue #20: target <= 3 %).

The same ``generate_until`` call through lmms-eval's own ``qwen2_5_vl`` wrapper (real class, the
tiny random Qwen2.5-VL of ``tests/fixtures_models.py``) at batch 4 on images of mixed sizes, with
biores' accounting installed and uninstalled in interleaved rounds (so a shared machine's drift
hits both). Checks the batching is the same either way (generate() calls and rows) and that every
result carries a count with accounting on. Reports the median with/without wall-time ratio over
the rounds and its spread (min..max), then a SUMMARY line.

    .venv/bin/python bench/accounting_overhead.py [--rounds 9] [--docs 24] [--batch 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_setup  # noqa: F401  (on import: the repository and tests/ on sys.path, the hub offline)
import numpy as np  # noqa: E402  (after the thread settings above)
from PIL import Image  # noqa: E402

SIZES = [(56, 56), (112, 84), (168, 112), (224, 224), (84, 196), (140, 56)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    args = parser.parse_args(argv)

    import fixtures_models as fm
    import torch
    from lmms_eval.api.instance import GenerationResult, Instance
    from lmms_eval.models import get_model

    from biores_plugin.lmms_plugin import accounting

    torch.manual_seed(0)
    folder = fm.build_qwen_vl(Path(tempfile.mkdtemp()), "qwen2_5_vl")
    rng = np.random.default_rng(0)
    docs = [
        {"image": Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))}
        for w, h in (SIZES[i % len(SIZES)] for i in range(args.docs))
    ]
    gen = {"max_new_tokens": args.max_new_tokens, "temperature": 0, "until": []}

    def requests():
        return [
            Instance(
                "generate_until",
                (
                    f"Doc {i}: what is shown?" + " answer" * (i % 5),
                    dict(gen),
                    lambda d: [d["image"]],
                    i,
                    "bench",
                    "test",
                ),
                0,
                {"task": "bench", "doc_id": i, "repeats": 1},
            )
            for i in range(args.docs)
        ]

    accounting.install()
    lm = get_model("qwen2_5_vl", force_simple=True)(
        pretrained=str(folder),
        device_map="cpu",
        device="cpu",
        batch_size=args.batch,
        min_pixels=3136,
        max_pixels=200704,
    )
    lm.task_dict = {"bench": {"test": docs}}
    calls: list[int] = []
    model = lm.model

    def counting(*a, **k):  # the bench's own count of what reaches generate() (then the class's, hooked or not)
        calls.append(int(k["input_ids"].shape[0]))
        return type(model).generate(model, *a, **k)

    model.generate = counting

    def one(on: bool) -> tuple[float, list[int], list]:
        if on:  # what biores' entry point does, and what get_model() then does for this class
            accounting.install()
            accounting.watch_model_class(type(lm))
        else:
            accounting.uninstall()
        calls.clear()
        start = time.perf_counter()
        out = lm.generate_until(requests())
        return time.perf_counter() - start, list(calls), out

    one(True), one(False)  # warm-up both
    ratios, t_on, t_off = [], [], []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        timing = {}
        for on in order:
            seconds, rows, out = one(on)
            timing[on] = seconds
            expected = [args.batch] * (args.docs // args.batch) + (
                [args.docs % args.batch] if args.docs % args.batch else []
            )
            if rows != expected:
                raise SystemExit(f"accounting {'on' if on else 'off'}: generate() got rows {rows}, expected {expected}")
            if on and not all(isinstance(o, GenerationResult) and o.token_counts.visual_tokens for o in out):
                raise SystemExit(f"accounting on: a result has no visual-token count: {out[0]}")
        t_on.append(timing[True])
        t_off.append(timing[False])
        ratios.append(timing[True] / timing[False])
    accounting.uninstall()
    median = statistics.median(ratios)
    print(f"qwen2_5_vl tiny, {args.docs} docs, batch {args.batch}, {args.rounds} interleaved rounds")
    print(
        f"  without accounting: median {statistics.median(t_off):.3f} s; with: median {statistics.median(t_on):.3f} s"
    )
    print(f"  with/without ratio per round: {' '.join(f'{r:.3f}' for r in ratios)}")
    print(
        f"SUMMARY accounting overhead {100 * (median - 1):+.1f}% (median of {args.rounds}, "
        f"spread {100 * (min(ratios) - 1):+.1f}% .. {100 * (max(ratios) - 1):+.1f}%); "
        f"generate() got the same rows either way: {calls}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
