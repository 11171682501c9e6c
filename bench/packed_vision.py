"""Packed varlen vision encoding vs the padded batch, in one run.

A mixed-size batch (default 8 images, 224x224 ... 768x1024 HxW) goes through a random ViT-B/16-sized CLIP
tower: ``packed`` (biores ``encode_packed``, one [1, total, D] sequence, block-diagonal attention) against
``padded+mask`` (zero-padded to the largest H and W, key-padding mask) and ``padded`` (no mask). The padded
variants are cost baselines, not the same features. Peak memory: CUDA allocator, or sampled process RSS on
CPU. ``python bench/packed_vision.py [--layers 12] [--device cuda] [--backward]``; docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import threading
import time
from dataclasses import dataclass

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from biores_plugin.vision import encode_packed  # noqa: E402
from biores_plugin.vision.kernels import resolve_backend  # noqa: E402

# (H, W): square and non-square, portrait and landscape, smallest 224x224, largest 768x1024 (= 1024x768 W x H)
DEFAULT_SIZES = [(224, 224), (336, 336), (448, 320), (512, 512), (384, 640), (480, 640), (576, 768), (768, 1024)]
CPU_DEFAULT_LAYERS = 4  # measured on 2 CPU cores, one layer: packed 1.8 s, padded+mask 8.2 s, padded 4.4 s, so the
# full 12-layer ViT-B comparison would take ~3 min; per-layer cost is uniform, so the ratios hold at any depth


# --------------------------------------------------------------------------------------------- memory
class PeakMemory:
    """Peak memory above the starting point of a code block (CUDA allocator, or sampled process RSS on CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._rss())
            time.sleep(0.002)

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            try:
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            except OSError:
                pass
            self._base = self._max = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, self._rss())
            self.peak_bytes = self._max - self._base

    @property
    def method(self) -> str:
        return "cuda.max_memory_allocated delta" if self.device.type == "cuda" else "sampled RSS delta"


# --------------------------------------------------------------------------------------------- model / data
def build_tower(layers: int, hidden: int, heads: int, patch: int, image_size: int, device, dtype):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch,
    )
    return CLIPVisionModel(cfg).to(device=device, dtype=dtype).eval()


def make_images(sizes, device, dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(3, h, w, generator=g).to(device=device, dtype=dtype) for h, w in sizes]


def pad_batch(images: list[torch.Tensor], patch: int):
    """Zero-pad to the largest H, W -> ([N, 3, Hmax, Wmax], key mask [N, 1, 1, 1 + gh*gw] True = real token)."""
    hmax = max(x.shape[1] for x in images)
    wmax = max(x.shape[2] for x in images)
    batch = images[0].new_zeros(len(images), 3, hmax, wmax)
    gh, gw = hmax // patch, wmax // patch
    mask = torch.zeros(len(images), 1, 1, 1 + gh * gw, dtype=torch.bool, device=images[0].device)
    for i, x in enumerate(images):
        batch[i, :, : x.shape[1], : x.shape[2]] = x
        valid = torch.zeros(gh, gw, dtype=torch.bool)
        valid[: x.shape[1] // patch, : x.shape[2] // patch] = True
        mask[i, 0, 0, 0] = True  # class token
        mask[i, 0, 0, 1:] = valid.flatten().to(mask.device)
    return batch, mask


# --------------------------------------------------------------------------------------------- running
@dataclass
class Row:
    name: str
    tokens: int
    real_tokens: int
    seconds: float
    peak_bytes: int


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_once(fn, device, backward: bool) -> tuple[float, int]:
    with PeakMemory(device) as mem:
        _sync(device)
        t0 = time.perf_counter()
        if backward:
            with torch.enable_grad():
                fn().float().square().mean().backward()
        else:
            with torch.inference_mode():
                fn()
        _sync(device)
        seconds = time.perf_counter() - t0
    return seconds, mem.peak_bytes


def compare(model, images, patch: int, backend: str, variants, device, backward=False, reps=1, warmup=True):
    """Run packed and padded variants, interleaved ``reps`` times (min time, max peak); packed row first."""
    real = sum((x.shape[1] // patch) * (x.shape[2] // patch) + 1 for x in images)
    batch, mask = pad_batch(images, patch)
    padded_tokens = batch.shape[0] * mask.shape[-1]
    fns = {
        "packed": lambda: encode_packed(model, images, feature_layer=-1, select="cls_patch", backend=backend).features,
        "padded+mask": lambda: (
            model(pixel_values=batch, interpolate_pos_encoding=True, attention_mask=mask).last_hidden_state
        ),
        "padded": lambda: model(pixel_values=batch, interpolate_pos_encoding=True).last_hidden_state,
    }
    if warmup:  # one small pass through every code path (kernel selection, allocator warm-up)
        small = [x[:, : 2 * patch, : 3 * patch] for x in images[:2]]
        sb, sm = pad_batch(small, patch)
        with torch.inference_mode():
            encode_packed(model, small, backend=backend)
            model(pixel_values=sb, interpolate_pos_encoding=True, attention_mask=sm)
            model(pixel_values=sb, interpolate_pos_encoding=True)
    best = {name: (float("inf"), 0) for name in variants}
    for _ in range(reps):
        for name in variants:
            model.zero_grad(set_to_none=True)
            secs, peak = run_once(fns[name], device, backward)
            best[name] = (min(best[name][0], secs), max(best[name][1], peak))
    model.zero_grad(set_to_none=True)
    return [
        Row(name, real if name == "packed" else padded_tokens, real, best[name][0], best[name][1]) for name in variants
    ]


def print_table(rows: list[Row], mem_method: str) -> None:
    base = next(r for r in rows if r.name == "packed")
    print(f"{'variant':<13} {'tokens':>7} {'padding':>8} {'time s':>8} {'time/packed':>12} {'peak MiB':>9}")
    for r in rows:
        pad = 1.0 - r.real_tokens / r.tokens
        print(
            f"{r.name:<13} {r.tokens:>7d} {pad:>7.1%} {r.seconds:>8.2f} {r.seconds / base.seconds:>11.2f}x "
            f"{r.peak_bytes / 2**20:>9.0f}"
        )
    print(f"(peak memory = {mem_method}; padding = padding tokens / tokens processed)")


def parse_sizes(text: str | None, n: int):
    if not text:
        sizes = DEFAULT_SIZES
        return [sizes[i % len(sizes)] for i in range(n)]
    out = []
    for item in text.split(","):
        h, w = item.lower().split("x")
        out.append((int(h), int(w)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--layers", type=int, default=None, help=f"tower depth (default 12 on CUDA, {CPU_DEFAULT_LAYERS} on CPU)"
    )
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--patch", type=int, default=16, choices=(14, 16))
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--sizes", default=None, help="comma list of HxW, e.g. 224x224,768x1024 (overrides --images)")
    ap.add_argument(
        "--dtype",
        default=None,
        choices=("float32", "bfloat16", "float16"),
        help="default float32 on CPU, bfloat16 on CUDA",
    )
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--variants", default="packed,padded+mask,padded")
    ap.add_argument("--backward", action="store_true", help="time forward+backward (training) instead of inference")
    ap.add_argument("--reps", type=int, default=1, help="timed repetitions per variant (min is reported)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    layers = args.layers or (12 if device.type == "cuda" else CPU_DEFAULT_LAYERS)
    sizes = parse_sizes(args.sizes, args.images)
    image_size = 224 if args.patch == 16 else 336
    sizes = [(h // args.patch * args.patch, w // args.patch * args.patch) for h, w in sizes]

    print(f"torch {torch.__version__}, device {device}, dtype {dtype}, threads {torch.get_num_threads()}")
    print(
        f"tower: CLIP ViT hidden {args.hidden}, {args.heads} heads, patch {args.patch}, image_size {image_size}, "
        f"{layers} layers" + ("" if layers == 12 else " (ViT-B has 12)")
    )
    if device.type == "cpu" and args.layers is None:
        print(
            f"NOTE: CPU default is {CPU_DEFAULT_LAYERS} layers, not 12: a full ViT-B padded batch takes more than "
            "~2 minutes on 2 cores; per-layer cost is uniform, so the ratios hold. Use --layers 12 for the full tower."
        )
    print(f"images (HxW): {', '.join(f'{h}x{w}' for h, w in sizes)}")
    print(
        f"packed attention backend: {resolve_backend(args.backend, device, dtype)} (requested {args.backend!r}); "
        f"mode: {'forward+backward' if args.backward else 'inference'}"
    )

    model = build_tower(layers, args.hidden, args.heads, args.patch, image_size, device, dtype)
    images = make_images(sizes, device, dtype)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "packed" not in variants:
        variants.insert(0, "packed")
    t0 = time.perf_counter()
    rows = compare(model, images, args.patch, args.backend, variants, device, backward=args.backward, reps=args.reps)
    print_table(rows, PeakMemory(device).method)
    for r in rows[1:]:
        print(f"speed-up of packed over {r.name}: {r.seconds / rows[0].seconds:.2f}x")
    print(f"total bench time {time.perf_counter() - t0:.1f} s")
    ups = ", ".join(f"{r.seconds / rows[0].seconds:.2f}x {r.name}" for r in rows[1:])
    mode = "forward+backward" if args.backward else "inference"
    print(
        f"SUMMARY packed-vision {ups} ({mode}, {device.type} {str(dtype).replace('torch.', '')}, {len(images)} images)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
