"""Visual tokens per image at each pixel budget (Qwen2-VL / Qwen2.5-VL resize rule, 28 px per token).

Prints the markdown table quoted in README.md and docs/run.md from
``biores_plugin.resolution.budget.visual_tokens`` (checked against the HF processor in
tests/test_run.py). No model, no GPU:

    .venv/bin/python bench/budget_tokens.py [--budgets 50176,1000000,12845056] [--min-pixels 784]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biores_plugin.resolution.budget import (  # noqa: E402
    STUDY_BUDGETS,
    STUDY_MIN_PIXELS,
    max_tokens,
    smart_resize,
    visual_tokens,
)

#: typical biomedical image sizes (width x height): VQA-RAD/SLAKE radiographs, PathVQA patches,
#: microscopy fields, a chest X-ray, a whole-slide region
SIZES = [(224, 224), (512, 512), (1024, 768), (2048, 1536), (3000, 3000), (4096, 4096)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default=",".join(str(b) for b in STUDY_BUDGETS))
    parser.add_argument("--min-pixels", type=int, default=STUDY_MIN_PIXELS)
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    print("| image (W x H) | " + " | ".join(f"max_pixels={b:,} (<= {max_tokens(b):,})" for b in budgets) + " |")
    print("|---|" + "---:|" * len(budgets))
    for w, h in SIZES:
        cells = []
        for b in budgets:
            rh, rw = smart_resize(h, w, 28, args.min_pixels, b)
            cells.append(f"{visual_tokens(w, h, b, args.min_pixels):,} ({rw}x{rh})")
        print(f"| {w} x {h} | " + " | ".join(cells) + " |")
    print(
        f"\nSUMMARY budget tokens: min_pixels={args.min_pixels}; tokens = (H'/28)*(W'/28), "
        "H' x W' = smart_resize(H, W) within [min_pixels, max_pixels]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
