"""Producer of the timing tables in docs/vision_attention.md and docs/image_loading.md.

    python docs/scripts/timings.py attention [--rounds 7] [--threads N]   # sdpa_segments vs sdpa_blockdiag
    python docs/scripts/timings.py decode [--rounds 3]                    # full decode vs header, 10 MP images

Rounds are interleaved (the order alternates); each table cell is the median over rounds, and each
ratio the median of the per-round ratios with its range. The conditions are printed with the table.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable

ATTENTION_CASES = [  # (lengths, backward?)
    ([196, 400, 784, 256], False),
    ([196, 1024, 3072, 768, 2304], False),
    ([64] * 32, False),
    ([5, 17, 50, 9], False),
    ([197, 442, 561, 1025], True),
    ([17, 50, 65, 10, 33], True),
]


def _interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else list(reversed(list(fns))):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def attention(rounds: int) -> None:
    import torch

    from biores_plugin.vision import cu_seqlens_from_lengths, varlen_attention

    print("| sequence lengths | `sdpa_segments` | `sdpa_blockdiag` | blockdiag / segments [min-max] |")
    print("| --- | --- | --- | --- |")
    for lengths, backward in ATTENTION_CASES:
        total, g = sum(lengths), torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(total, 12, 64, generator=g, requires_grad=backward) for _ in range(3))
        cu = cu_seqlens_from_lengths(lengths)

        def run(backend: str, q=q, k=k, v=v, cu=cu, lengths=lengths, backward=backward) -> Callable[[], object]:
            def call() -> object:
                out = varlen_attention(q, k, v, cu, max(lengths), backend=backend)
                if backward:
                    out.sum().backward()
                return out

            return call

        with torch.set_grad_enabled(backward):
            times = _interleaved({"seg": run("sdpa_segments"), "blk": run("sdpa_blockdiag")}, rounds)
        ratios = [b / s for s, b in zip(times["seg"], times["blk"])]
        label = ("forward+backward " if backward else "") + (
            f"{len(lengths)} x [{lengths[0]}]" if len(set(lengths)) == 1 else str(lengths)
        )
        print(
            f"| {label} | {_ms(statistics.median(times['seg']))} | {_ms(statistics.median(times['blk']))} | "
            f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] |"
        )
    print(
        f"\nconditions: 12 heads x 64, fp32, CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f}"
    )


def decode(rounds: int) -> None:
    import numpy as np
    from PIL import Image

    from biores_plugin.image_io import image_size, load_image

    rng = np.random.default_rng(0)
    w, h = 3650, 2740
    base = np.asarray(
        Image.fromarray(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    )
    files = {}
    for name, image, fmt in (
        ("PNG", Image.fromarray(base), "PNG"),
        ("JPEG", Image.fromarray(base), "JPEG"),
        ("16-bit TIFF", Image.fromarray(base[..., 0].astype(np.uint16) * 257), "TIFF"),
    ):
        buf = io.BytesIO()
        image.save(buf, fmt)
        files[name] = buf.getvalue()
    print("| file (3650 x 2740) | full decode (`load_image`) | header only (`image_size`) |")
    print("| --- | --- | --- |")
    for name, data in files.items():
        times = _interleaved({"full": lambda d=data: load_image(d), "header": lambda d=data: image_size(d)}, rounds)
        print(f"| {name} | {_ms(statistics.median(times['full']))} | {_ms(statistics.median(times['header']))} |")
    print(
        f"\nconditions: {rounds} interleaved rounds, median; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["attention", "decode"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    (attention if args.what == "attention" else decode)(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
