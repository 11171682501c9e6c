"""Images of one size in a packed tower pass: one batched call per run of equal sizes vs one call per image.

``encode_packed`` embeds consecutive images of one size as one batch and ``sdpa_segments`` (the CPU varlen
attention) attends consecutive segments of one length as one batched SDPA call; the reference is the loop they
replaced (one embedding call and one SDPA call per image), built here from the same tower. Both give the same
features (checked every round). Timed: forward + backward of a tiny SigLIP tower (the ``biores demo`` tower:
width 64, 2 layers, 4 heads, 16-px patches, 1 channel) on a batch of 32 images at 192 px (the demo's native
resolution), at 64 px (its low one), and a mixed batch (16 at 192, 8 at 128, 8 at 64, in runs). Median ratio over
interleaved rounds, with its spread. ``python bench/equal_runs.py [--rounds 9] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager

import bench_setup  # noqa: F401  (repository on sys.path, hub offline)
import torch
import torch.nn.functional as F

from biores_plugin.vision import encode_packed, kernels, packed_encoder


def _sdpa_one_by_one(q, k, v, lengths, scale, dropout, causal):
    outs, start = [], 0
    for n in lengths:
        if n:
            o = F.scaled_dot_product_attention(
                *(t[start : start + n].transpose(0, 1).unsqueeze(0) for t in (q, k, v)),
                dropout_p=dropout,
                scale=scale,
                is_causal=causal,
            )
            outs.append(o[0].transpose(0, 1))
            start += n
    return torch.cat(outs)


@contextmanager
def one_by_one():
    """The reference: every image embedded and attended alone (the loop before equal runs were batched)."""
    runs, sdpa = packed_encoder.equal_runs, kernels._sdpa_segments
    packed_encoder.equal_runs = lambda sizes: [(i, 1) for i in range(len(sizes))]
    kernels._sdpa_segments = _sdpa_one_by_one
    try:
        yield
    finally:
        packed_encoder.equal_runs, kernels._sdpa_segments = runs, sdpa


def tower():
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    config = SiglipVisionConfig(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=192,
        patch_size=16,
        num_channels=1,
    )
    return SiglipVisionModel(config)


def step(model, images) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    feats = encode_packed(model, images, feature_layer=-1, backend="sdpa_segments").features
    feats.square().mean().backward()
    return feats.detach()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = tower()
    g = torch.Generator().manual_seed(1)
    batches = {
        "192px x32": [torch.randn(1, 192, 192, generator=g) for _ in range(32)],
        "64px x32": [torch.randn(1, 64, 64, generator=g) for _ in range(32)],
        "mixed x32": [torch.randn(1, s, s, generator=g) for s in [192] * 16 + [128] * 8 + [64] * 8],
    }
    summary = []
    for name, images in batches.items():
        times: dict[str, list[float]] = {"batched": [], "one_by_one": []}
        for _ in range(args.rounds):
            for variant in ("one_by_one", "batched"):  # interleaved: a drift of the machine shifts both
                start = time.perf_counter()
                if variant == "batched":
                    got = step(model, images)
                else:
                    with one_by_one():
                        ref = step(model, images)
                times[variant].append(time.perf_counter() - start)
            if not torch.allclose(got, ref, atol=1e-5, rtol=0):
                print(f"{name}: batched features differ from one by one", file=sys.stderr)
                return 1
        ratios = [a / b for a, b in zip(times["one_by_one"], times["batched"])]
        med = statistics.median(ratios)
        print(
            f"{name}: one by one {statistics.median(times['one_by_one']) * 1e3:.1f} ms, batched "
            f"{statistics.median(times['batched']) * 1e3:.1f} ms (forward + backward), "
            f"{med:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
        )
        summary.append(f"{name} {med:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]")
    print(
        f"\nSUMMARY equal-runs median of {args.rounds} interleaved rounds [min-max], {args.threads} thread(s): "
        + "; ".join(summary)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
