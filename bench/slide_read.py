"""Reading a slide at a pixel size: biores' pyramid read against decoding the base level and resizing.

A tiled, zlib-compressed OME-TIFF pyramid (``--size`` px base at 0.25 µm/px, levels /2, /4, /8)
is read at ``--mpp`` µm/px by ``load_image(path, mpp=...)`` (the level that serves the target,
only its tiles) and by the reference a script would write without pyramid support: tifffile
decodes the base level, Pillow resizes it (same filter). Rounds interleave the two; the ratio
is the median of per-round time ratios, with its spread. Peak traced memory of one call each.
``python bench/slide_read.py [--size 4096] [--mpp 1.0] [--rounds 7]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from biores_plugin.image_io import load_image

MPP = 0.25


def write_slide(path: Path, size: int) -> None:
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 32, (size // 16, size // 16, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    base = (
        np.stack(
            [
                np.broadcast_to(ramp[None, :], (size, size)),
                np.broadcast_to(ramp[:, None], (size, size)),
                np.full((size, size), 128, np.float32),
            ],
            axis=-1,
        ).astype(np.uint8)
        + noise
    )
    options = {"tile": (256, 256), "compression": "zlib", "photometric": "rgb"}
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(base, subifds=3, metadata={"axes": "YXS", "PhysicalSizeX": MPP, "PhysicalSizeY": MPP}, **options)
        for factor in (2, 4, 8):
            tw.write(np.asarray(Image.fromarray(base).reduce(factor)), subfiletype=1, **options)


def reference(path: Path, mpp: float) -> Image.Image:
    """No pyramid support: decode the base level, resize to the target pixel size."""
    base = tifffile.imread(path)
    side = round(base.shape[1] * MPP / mpp), round(base.shape[0] * MPP / mpp)
    return Image.fromarray(base).resize(side, Image.LANCZOS, reducing_gap=3.0)


def _peak(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--mpp", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "slide.ome.tif"
        write_slide(path, args.size)
        ours, ref = load_image(path, mpp=args.mpp), reference(path, args.mpp)
        assert ours.size == ref.size, (ours.size, ref.size)
        diff = np.abs(np.asarray(ours, np.int16) - np.asarray(ref, np.int16))
        print(
            f"slide {args.size} px at {MPP} um/px read at {args.mpp} um/px -> {ours.size}; "
            f"mean |biores - reference| = {diff.mean():.2f} levels (a level's box reduction vs one Lanczos)"
        )
        times: dict[str, list[float]] = {"biores": [], "reference": []}
        for _ in range(args.rounds):
            for name, fn in (
                ("biores", lambda: load_image(path, mpp=args.mpp)),
                ("reference", lambda: reference(path, args.mpp)),
            ):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        ratios = [r / b for b, r in zip(times["biores"], times["reference"])]
        peaks = {
            "biores": _peak(lambda: load_image(path, mpp=args.mpp)),
            "reference": _peak(lambda: reference(path, args.mpp)),
        }
    for name, values in times.items():
        print(f"{name:10s} median {1000 * statistics.median(values):8.1f} ms  peak traced {peaks[name]:7.1f} MiB")
    ratio = statistics.median(ratios)
    print(
        f"\nSUMMARY slide read at {args.mpp} um/px: biores {ratio:.1f}x faster than base decode + resize "
        f"(per-round ratios {min(ratios):.1f}-{max(ratios):.1f}, {args.rounds} rounds), "
        f"peak {peaks['biores']:.1f} vs {peaks['reference']:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
