"""Throughput of the biores image processors against transformers' own and the floor, in one run.

native: ``BioresNativeImageProcessor`` (Qwen2-VL layout) vs ``Qwen2VLImageProcessor`` (torchvision and PIL
backends) and the floor (PIL array, one resize, normalise, patchify); anyres: ``BioresAnyResImageProcessor``
vs ``LlavaNextImageProcessor`` (both backends). The same 1-4 MP images, outputs checked first, rounds
interleaved; the ratio reported is the median of the per-round ratios, with its range.
``python bench/processor_throughput.py [--images 16] [--rounds 5] [--threads N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image


def make_images(n: int, seed: int = 0) -> list[Image.Image]:
    """Smooth, microscopy-like RGB images between 1 and 4 megapixels, mixed aspect ratios."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        megapixels = rng.uniform(1.0, 4.0)
        aspect = rng.choice([1.0, 4 / 3, 3 / 4, 16 / 9, 9 / 16, 2.0])
        w = int(round((megapixels * 1e6 * aspect) ** 0.5))
        h = int(round(megapixels * 1e6 / w))
        small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        base = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        noise = rng.integers(0, 24, (h, w, 3), dtype=np.uint8)
        images.append(Image.fromarray(np.clip(np.asarray(base, dtype=np.int16) + noise - 12, 0, 255).astype(np.uint8)))
    return images


def floor_native(patch: int, merge: int, temporal: int, min_pixels: int, max_pixels: int, mean, std):
    """The floor chain for the Qwen2-VL layout, images spread over threads like biores does."""
    from concurrent.futures import ThreadPoolExecutor

    from torchvision.transforms.v2 import functional as tvF
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    scale = torch.tensor([1 / (255 * s) for s in std])
    offset = torch.tensor([-m / s for m, s in zip(mean, std)])

    def one(image):
        hwc = torch.from_numpy(np.array(image))  # writable, as torch wants
        h, w = smart_resize(
            hwc.shape[0], hwc.shape[1], factor=patch * merge, min_pixels=min_pixels, max_pixels=max_pixels
        )
        resized = tvF.resize(hwc.permute(2, 0, 1), [h, w], interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
        pixels = torch.addcmul(offset, resized.permute(1, 2, 0).float(), scale)  # [h, w, 3]
        gh, gw = h // patch, w // patch
        view = pixels.view(gh // merge, merge, patch, gw // merge, merge, patch, 3).permute(0, 3, 1, 4, 6, 2, 5)
        view = view.unsqueeze(5).expand(-1, -1, -1, -1, -1, temporal, -1, -1)
        return view.reshape(gh * gw, 3 * temporal * patch * patch)

    def run(images):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max_workers=min(threads, len(images))) as pool:
                return {"pixel_values": torch.cat(list(pool.map(one, images)))}
        finally:
            torch.set_num_threads(threads)

    return run


def timed(fn, images, rounds: int) -> list[float]:
    return [_once(fn, images) for _ in range(rounds)]


def _once(fn, images) -> float:
    start = time.perf_counter()
    fn(images)
    return time.perf_counter() - start


def spread(values: list[float]) -> str:
    """``median [min-max]`` of per-round values."""
    return f"{statistics.median(values):.2f}x [{min(values):.2f}-{max(values):.2f}]"


def compare(title: str, contenders: dict, images, rounds: int, check, floor: str | None = None) -> dict[str, float]:
    """Interleaved rounds (the order alternates); each round gives every contender's time on the same images,
    so each round gives one biores-vs-reference ratio: the median of those ratios and their range are reported."""
    for name, fn in contenders.items():  # warm-up + correctness
        check(name, fn(images[:2]))
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        order = list(contenders) if r % 2 == 0 else list(reversed(list(contenders)))
        for name in order:
            samples[name].append(_once(contenders[name], images))
    rates = {name: len(images) / statistics.median(s) for name, s in samples.items()}
    ours = samples["biores"]
    ratios = {name: [t / o for t, o in zip(s, ours)] for name, s in samples.items()}  # > 1: biores faster
    best_ref_name = max((n for n in rates if n not in ("biores", floor)), key=rates.get)
    print(f"\n{title}")
    print(f"{'processor':<38}{'images/s':>10}   {'biores speed-up: median [min-max] of ' + str(rounds) + ' rounds'}")
    for name, rate in rates.items():
        print(f"{name:<38}{rate:>10.1f}   {spread(ratios[name])}")
    ratio = statistics.median(ratios[best_ref_name])
    print(f"=> biores is {spread(ratios[best_ref_name])} the faster HF processor ({best_ref_name})")
    out = {"ratio": ratio, "ratio_min": min(ratios[best_ref_name]), "ratio_max": max(ratios[best_ref_name]), **rates}
    if floor:
        floor_ratios = [o / f for o, f in zip(ours, samples[floor])]  # > 1: the floor is faster
        out.update(floor=statistics.median(floor_ratios), floor_min=min(floor_ratios), floor_max=max(floor_ratios))
        print(f"=> the floor is {spread(floor_ratios)} biores")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (the ratio is their median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    from biores_plugin.resolution import add_resolution_arguments

    add_resolution_arguments(parser, ("max_pixels",), dashes=True, max_pixels=1024 * 28 * 28)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextImageProcessorPil,
        Qwen2VLImageProcessor,
        Qwen2VLImageProcessorPil,
    )

    from biores_plugin.processing import BioresAnyResImageProcessor, BioresNativeImageProcessor

    images = make_images(args.images)
    mp = [im.size[0] * im.size[1] / 1e6 for im in images]
    print(
        f"{len(images)} images, {min(mp):.1f}-{max(mp):.1f} MP; torch threads {torch.get_num_threads()}; "
        f"torch {torch.__version__}"
    )

    qwen_kw = dict(min_pixels=56 * 56, max_pixels=args.max_pixels)
    hf_q = Qwen2VLImageProcessor(**qwen_kw)
    hf_q_pil = Qwen2VLImageProcessorPil(**qwen_kw)
    ours_q = BioresNativeImageProcessor(
        patch_size=14, merge_size=2, temporal_patch_size=2, return_format="patches", **qwen_kw
    )
    reference = hf_q(images[:2], return_tensors="pt")["pixel_values"]

    def check_native(name, out):
        got = (
            out["pixel_values"]
            if not isinstance(out["pixel_values"], np.ndarray)
            else torch.from_numpy(out["pixel_values"])
        )
        diff = (torch.as_tensor(got) - reference).abs().max().item()
        print(f"  [check] native {name}: max |diff| vs Qwen2VLImageProcessor = {diff:.2e}")
        if name.startswith(("biores", "floor")) and diff > 1e-5:
            raise SystemExit(f"{name} native output differs from the reference by {diff}")

    native = compare(
        "native resolution (Qwen2-VL layout: patch 14, merge 2, temporal 2)",
        {
            "biores": lambda ims: ours_q(ims),
            "floor (resize, normalise, patchify)": floor_native(
                14, 2, 2, mean=hf_q.image_mean, std=hf_q.image_std, **qwen_kw
            ),
            "Qwen2VLImageProcessor (torchvision)": lambda ims: hf_q(ims, return_tensors="pt"),
            "Qwen2VLImageProcessorPil": lambda ims: hf_q_pil(ims, return_tensors="pt"),
        },
        images,
        args.rounds,
        check_native,
        floor="floor (resize, normalise, patchify)",
    )

    any_kw = dict(
        size={"shortest_edge": 336},
        crop_size={"height": 336, "width": 336},
        image_grid_pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    )
    hf_a = LlavaNextImageProcessor(**any_kw)
    hf_a_pil = LlavaNextImageProcessorPil(**any_kw)
    ours_a = BioresAnyResImageProcessor(**any_kw)
    ref_a = hf_a(images[:2], return_tensors="pt")["pixel_values"]

    def check_anyres(name, out):
        diff = (torch.as_tensor(np.asarray(out["pixel_values"])) - ref_a).abs().max().item()
        print(f"  [check] anyres {name}: max |diff| vs LlavaNextImageProcessor = {diff:.2e}")
        if name == "biores" and diff > 1e-5:
            raise SystemExit(f"biores anyres output differs from the reference by {diff}")

    anyres = compare(
        "anyres (LLaVA-NeXT, 336 base, 5 pinpoints)",
        {
            "biores": lambda ims: ours_a(ims, return_tensors="pt"),
            "LlavaNextImageProcessor (torchvision)": lambda ims: hf_a(ims, return_tensors="pt"),
            "LlavaNextImageProcessorPil": lambda ims: hf_a_pil(ims, return_tensors="pt"),
        },
        images,
        args.rounds,
        check_anyres,
    )
    print(
        f"\nSUMMARY median of {args.rounds} interleaved rounds [min-max]: native "
        f"{native['ratio']:.2f}x hf [{native['ratio_min']:.2f}-{native['ratio_max']:.2f}], "
        f"floor {native['floor']:.2f}x biores "
        f"[{native['floor_min']:.2f}-{native['floor_max']:.2f}]; anyres {anyres['ratio']:.2f}x hf "
        f"[{anyres['ratio_min']:.2f}-{anyres['ratio_max']:.2f}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
