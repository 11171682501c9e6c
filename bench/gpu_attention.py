"""Varlen attention kernels, their biores paths, packed vs padded towers, on CUDA (bf16), in one run.

Part 1: every available backend (flash_attn, torch_varlen, sdpa_*) and the padded baselines on the packed
tokens of a mixed-size image batch: time, useful TFLOP/s, peak memory, error vs an fp32 reference.
Part 1b: biores' paths (``varlen_attention``, the ``biores_varlen`` transformers function) as a fraction
of each raw kernel. Part 2: ViT-B/16 and ViT-L/14-336 towers, packed vs padded. Without CUDA it runs a
reduced fp32 CPU version and says so. ``python bench/gpu_attention.py [--quick] [--cpu-smoke]``;
details in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (ROOT, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import packed_vision as pv  # noqa: E402  (bench/packed_vision.py: padded-batch helpers, memory meter, table)

from biores_plugin.vision.kernels import (  # noqa: E402
    BACKENDS,
    available_backends,
    backend_unavailable_reason,
    varlen_attention,
)
from biores_plugin.vision.packing import cu_seqlens_from_lengths  # noqa: E402


# --------------------------------------------------------------------------------------------- timing
def _time(fn, device, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        times = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_extra(fn, device) -> int | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


# --------------------------------------------------------------------------------------------- part 1
def _padded(q, k, v, lengths, scale, masked: bool):
    """[total, H, D] -> padded [N, H, Lmax, D] SDPA (+ key-padding mask) -> back to packed rows."""
    n, lmax, h, d = len(lengths), max(lengths), q.shape[1], q.shape[2]
    idx = torch.cat([torch.arange(L, device=q.device) + i * lmax for i, L in enumerate(lengths)])

    def to_pad(t):
        out = t.new_zeros(n * lmax, h, d)
        out[idx] = t
        return out.view(n, lmax, h, d).transpose(1, 2)

    mask = None
    if masked:
        mask = torch.zeros(n, 1, 1, lmax, dtype=torch.bool, device=q.device)
        for i, L in enumerate(lengths):
            mask[i, ..., :L] = True
    o = F.scaled_dot_product_attention(to_pad(q), to_pad(k), to_pad(v), attn_mask=mask, scale=scale)
    return o.transpose(1, 2).reshape(n * lmax, h, d)[idx]


def kernel_table(lengths, heads, head_dim, device, dtype, iters, warmup) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    total = sum(lengths)
    q32, k32, v32 = (torch.randn(total, heads, head_dim, generator=g).to(device) for _ in range(3))
    do = torch.randn(total, heads, head_dim, generator=g).to(device=device, dtype=dtype)
    cu = cu_seqlens_from_lengths(lengths, device=device)
    scale = head_dim**-0.5
    # fp32 reference (per-segment SDPA in float32) for output and dq
    qr = q32.clone().requires_grad_(True)
    ref_out = varlen_attention(qr, k32, v32, cu, max(lengths), scale, backend="sdpa_segments")
    ref_out.backward(do.float())
    ref_dq = qr.grad
    flops_fwd = 4 * sum(L * L for L in lengths) * heads * head_dim

    cands = {b: (lambda q, k, v, b=b: varlen_attention(q, k, v, cu, max(lengths), scale, backend=b)) for b in BACKENDS}
    cands["padded+mask"] = lambda q, k, v: _padded(q, k, v, lengths, scale, True)
    cands["padded"] = lambda q, k, v: _padded(q, k, v, lengths, scale, False)
    rows = []
    for name, fn in cands.items():
        if name in BACKENDS:
            reason = backend_unavailable_reason(name, device, dtype)
            if reason is not None:
                rows.append({"name": name, "skipped": reason})
                continue
        q, k, v = (t.detach().to(dtype).clone().requires_grad_(True) for t in (q32, k32, v32))

        def fwd(fn=fn, q=q, k=k, v=v):
            return fn(q, k, v)

        def fwd_bwd(fn=fn, q=q, k=k, v=v):
            q.grad = k.grad = v.grad = None
            fn(q, k, v).backward(do)

        try:
            with torch.no_grad():
                t_fwd = _time(fwd, device, iters, warmup)
                mem = _peak_extra(fwd, device)
            t_fb = _time(fwd_bwd, device, iters, warmup)
            q.grad = None
            out = fwd()
            out.backward(do)
            err_out = (out.float() - ref_out.detach()).abs().max().item()
            err_dq = (q.grad.float() - ref_dq).abs().max().item()
        except Exception as e:  # a kernel that refuses these shapes on this GPU: report, keep going
            rows.append({"name": name, "skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"})
            continue
        rows.append(
            {
                "name": name,
                "fwd_s": t_fwd,
                "fb_s": t_fb,
                "mem": mem,
                "tflops_fwd": flops_fwd / t_fwd / 1e12,
                "tflops_fb": 3.5 * flops_fwd / t_fb / 1e12,
                "err_out": err_out,
                "err_dq": err_dq,
            }
        )
    return rows


def print_kernel_table(rows, lengths, heads, head_dim, dtype) -> None:
    print(
        f"\n== Part 1: varlen attention kernels: {len(lengths)} sequences, total {sum(lengths)} tokens "
        f"(max {max(lengths)}), {heads} heads x {head_dim}, {dtype} =="
    )
    print(
        f"{'backend':<15} {'fwd ms':>8} {'fwd TFLOP/s':>12} {'f+b ms':>8} {'f+b TFLOP/s':>12} {'peak MiB':>9} "
        f"{'max|dout|':>10} {'max|ddq|':>10}"
    )
    for r in rows:
        if "skipped" in r:
            print(f"{r['name']:<15} skipped: {r['skipped']}")
            continue
        mem = "-" if r["mem"] is None else f"{r['mem'] / 2**20:.0f}"
        print(
            f"{r['name']:<15} {r['fwd_s'] * 1e3:>8.2f} {r['tflops_fwd']:>12.3f} {r['fb_s'] * 1e3:>8.2f} "
            f"{r['tflops_fb']:>12.3f} {mem:>9} {r['err_out']:>10.2e} {r['err_dq']:>10.2e}"
        )
    print("(TFLOP/s count useful block-diagonal FLOPs only; errors vs an fp32 per-segment reference)")


# ------------------------------------------------------------------------------ part 1b: path fractions
def _raw_kernel(name, q, k, v, cu, lengths, scale, causal):
    """The kernel called directly, without biores in between (its own throughput)."""
    from biores_plugin.vision import kernels as K

    cu32, mx = cu.to(torch.int32), max(lengths)
    if name == "flash_attn":
        return lambda: K._flash_attn_varlen_func()(q, k, v, cu32, cu32, mx, mx, softmax_scale=scale, causal=causal)
    if name == "torch_varlen":
        extra = (
            {"is_causal": True}
            if causal and "is_causal" in K._torch_varlen_params()
            else ({"window_size": (-1, 0)} if causal else {})
        )
        return lambda: K._torch_varlen_attn()(q, k, v, cu32, cu32, mx, mx, scale=scale, **extra)
    views = [
        (q[a:b].transpose(0, 1)[None], k[a:b].transpose(0, 1)[None], v[a:b].transpose(0, 1)[None])
        for a, b in zip(cu.tolist(), cu.tolist()[1:])
    ]
    return lambda: [F.scaled_dot_product_attention(x, y, z, scale=scale, is_causal=causal) for x, y, z in views]


def _interleaved(fns, device, iters: int, warmup: int) -> list[float]:
    """Median time of each call, measured round-robin (order alternating) so stalls hit all alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for r in range(iters):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            samples[i].append(_time(fns[i], device, 1, 0))
    return [statistics.median(s) for s in samples]


def path_fractions(lengths, heads, head_dim, device, dtype, iters, warmup) -> list[dict]:
    """Each backend through biores (``varlen_attention``; the transformers ``biores_varlen`` function in
    its [1, heads, total, dim] layout) as a fraction of the raw kernel, bidirectional and causal."""
    from biores_plugin.vision.attention import biores_varlen_attention_forward
    from biores_plugin.vision.kernels import PackedSeqInfo

    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(sum(lengths), heads, head_dim, generator=g).to(device=device, dtype=dtype) for _ in range(3))
    cu = cu_seqlens_from_lengths(lengths, device=device)
    scale = head_dim**-0.5
    module = torch.nn.Module()
    iters = max(iters, 20)  # sub-millisecond calls: medians of many, or one stall decides the ratio
    rows = []
    for name in ("flash_attn", "torch_varlen", "sdpa_segments"):
        if backend_unavailable_reason(name, device, dtype) is not None:
            continue
        for causal in (False, True):
            info = PackedSeqInfo(cu, backend=name)
            module.is_causal = causal
            qt, kt, vt = (t.transpose(0, 1)[None] for t in (q, k, v))
            calls = [
                _raw_kernel(name, q, k, v, cu, lengths, scale, causal),
                lambda name=name, causal=causal: varlen_attention(
                    q, k, v, cu, max(lengths), scale, backend=name, causal=causal, lengths=lengths
                ),
                lambda qt=qt, kt=kt, vt=vt, causal=causal, info=info: biores_varlen_attention_forward(
                    module, qt, kt, vt, None, scaling=scale, is_causal=causal, biores_packing=info
                ),
            ]
            threads = torch.get_num_threads()
            if device.type == "cpu":  # one thread: on a shared CPU the pool's wake-ups swamp sub-ms calls
                torch.set_num_threads(1)
            try:
                with torch.no_grad():
                    raw, direct, hf = _interleaved(calls, device, iters, warmup)
            finally:
                torch.set_num_threads(threads)
            rows.append({"name": name, "causal": causal, "raw": raw, "varlen": raw / direct, "transformers": raw / hf})
    print("\n== Part 1b: biores kernel paths as a fraction of the raw kernel's throughput (target >= 70 %) ==")
    print(f"{'backend':<15} {'mask':<7} {'raw ms':>8} {'varlen_attention':>17} {'biores_varlen (HF)':>19}")
    for r in rows:
        print(
            f"{r['name']:<15} {'causal' if r['causal'] else 'full':<7} {r['raw'] * 1e3:>8.2f} {r['varlen']:>16.0%} "
            f"{r['transformers']:>18.0%}"
        )
    return rows


# --------------------------------------------------------------------------------------------- part 2
def tower_section(name, layers, hidden, heads, patch, image_size, sizes, device, dtype, backends, backward, reps):
    model = pv.build_tower(layers, hidden, heads, patch, image_size, device, dtype)
    if not backward:
        model.requires_grad_(False)
    images = pv.make_images(sizes, device, dtype)
    mode = "forward+backward" if backward else "inference"
    print(f"\n-- {name}: hidden {hidden}, {layers} layers, {heads} heads, patch {patch}, {dtype}, {mode} --")
    rows = None
    for i, backend in enumerate(backends):
        variants = ["packed", "padded+mask", "padded"] if i == 0 else ["packed"]
        got = pv.compare(model, images, patch, backend, variants, device, backward=backward, reps=reps)
        got[0].name = f"packed:{backend}"
        if rows is None:
            rows = got
        else:
            rows.insert(i, got[0])
    # print_table measures ratios against the row named "packed": use the first (best-ranked) backend
    base = rows[0]
    print(f"{'variant':<22} {'tokens':>7} {'padding':>8} {'time s':>9} {'time/packed':>12} {'peak MiB':>9}")
    for r in rows:
        pad = 1.0 - r.real_tokens / r.tokens
        print(
            f"{r.name:<22} {r.tokens:>7d} {pad:>7.1%} {r.seconds:>9.4f} {r.seconds / base.seconds:>11.2f}x "
            f"{r.peak_bytes / 2**20:>9.0f}"
        )
    print(f"(time/packed relative to {base.name}; peak = {pv.PeakMemory(device).method})")
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="kernels + ViT-B inference only")
    ap.add_argument("--skip-towers", action="store_true")
    ap.add_argument(
        "--cpu-smoke", action="store_true", help="force the reduced CPU mode with tiny shapes (a crash test)"
    )
    args = ap.parse_args(argv)
    if args.cpu_smoke:
        args.device, args.skip_towers, args.iters = "cpu", True, 1

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    print(
        f"torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if cuda else f", {torch.get_num_threads()} threads")
    )
    print(f"available backends ({dtype}): {', '.join(available_backends(device, dtype))}")
    for b in BACKENDS:
        reason = backend_unavailable_reason(b, device, dtype)
        if reason is not None:
            print(f"  {b}: unavailable ({reason})")
    if not cuda:
        print(
            "REDUCED CPU MODE: no CUDA device, so the CUDA backends (flash_attn, torch_varlen) were SKIPPED; "
            "fp32, images / 4, small towers. Run on a GPU machine for the real numbers."
        )

    sizes = pv.parse_sizes(None, 8)
    if not cuda:
        sizes = [(max(args.patch, h // 4), max(args.patch, w // 4)) for h, w in sizes]
    sizes = [(h // args.patch * args.patch, w // args.patch * args.patch) for h, w in sizes]
    lengths = [(h // args.patch) * (w // args.patch) + 1 for h, w in sizes]
    heads = args.heads if cuda else 4
    iters = args.iters or (20 if cuda else 3)
    if args.cpu_smoke:
        lengths = [17, 50, 5]
    rows = kernel_table(lengths, heads, args.head_dim, device, dtype, iters, warmup=3 if cuda else 1)
    print_kernel_table(rows, lengths, heads, args.head_dim, dtype)
    fractions = path_fractions(lengths, heads, args.head_dim, device, dtype, iters, warmup=3 if cuda else 1)
    worst = min(fractions, key=lambda r: min(r["varlen"], r["transformers"]))
    summary = (
        f"SUMMARY gpu-attention kernel paths >= {min(worst['varlen'], worst['transformers']):.0%} of raw "
        f"(worst {worst['name']}{' causal' if worst['causal'] else ''}), device {device.type}"
    )

    if args.skip_towers:
        print(summary)
        return 0
    print(f"\n== Part 2: packed vs padded towers; images (HxW): {', '.join(f'{h}x{w}' for h, w in sizes)} ==")
    backends = available_backends(device, dtype)
    order = ["flash_attn", "torch_varlen", "sdpa_segments", "sdpa_blockdiag"]
    backends = [b for b in order if b in backends]
    reps = 3 if cuda else 1
    if cuda:
        towers = [("ViT-B/16", 12, 768, 12, 16, 224), ("ViT-L/14-336 (LLaVA)", 24, 1024, 16, 14, 336)]
        if args.quick:
            towers = towers[:1]
    else:
        towers = [("reduced ViT (CPU)", 2, 256, 4, args.patch, 224)]
    for name, layers, hidden, th, patch, isz in towers:
        tsizes = [(h // patch * patch, w // patch * patch) for h, w in sizes]
        for backward in (False,) if args.quick or not cuda else (False, True):
            tower_section(name, layers, hidden, th, patch, isz, tsizes, device, dtype, backends, backward, reps)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
