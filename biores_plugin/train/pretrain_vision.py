"""``biores-pretrain-vision``: pretrain a tiny vision tower on image-level labels.

The tiny tower ``biores-train --model_name_or_path tiny`` builds, trained with one linear head
per question type on its mean patch feature and saved with ``save_pretrained``, so that
``biores-train --vision_tower OUT`` starts from it (LLaVA's convention). Why: docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BioresConfigError, BioresError
from ..io_utils import atomic_write_text
from ..resolution import MixedResolution, add_resolution_arguments
from .args import DataArguments, ModelArguments

STATS = "biores_pretrain_stats.json"


class _Parser(argparse.ArgumentParser):
    """Flag errors become one-line ``BioresConfigError`` s, as in ``biores-train``."""

    def error(self, message: str):  # type: ignore[override]
        raise BioresConfigError(message)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = _Parser(prog="biores-pretrain-vision", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data_path",
        required=True,
        help="a biores synth folder (synth:DIR) or LLaVA JSON with one answer per question type",
    )
    p.add_argument("--image_folder", default=None)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--vision_tower", default="siglip", choices=("siglip", "clip"))
    p.add_argument(
        "--tiny_config",
        default=None,
        help="JSON overrides for the tiny tower (vision_hidden, vision_layers, heads, num_channels, image_size, "
        "patch_size)",
    )
    add_resolution_arguments(p, ("mixed_resolution", "max_pixels"))  # as biores-train declares them
    p.add_argument("--max_steps", type=int, default=400)
    p.add_argument("--per_device_train_batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--warmup_steps", type=int, default=20)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_samples", type=int, default=None)
    p.add_argument("--disable_tqdm", action="store_true")
    args = p.parse_args(argv)
    if args.max_steps < 1 or args.per_device_train_batch_size < 1:
        p.error("--max_steps and --per_device_train_batch_size must be positive")
    if args.tiny_config:
        try:
            json.loads(args.tiny_config)
        except json.JSONDecodeError as exc:
            p.error(f"--tiny_config is not JSON: {exc}")
    MixedResolution(args.mixed_resolution)  # one-line error before any data loads
    return args


class _Images:
    """Decoded pixel tensors at each record's drawn resolution, and one label per question type."""

    def __init__(
        self, records: Sequence[Any], processor: Any, draws: Sequence[int], classes: dict[str, list[str]], channels: int
    ):
        from ..image_io import load_image
        from ..resolution import downsample

        self.pixels: list[torch.Tensor] = []
        answers: dict[str, list[int]] = {kind: [] for kind in classes}
        for record, draw in zip(records, draws):
            if record.image is None:
                raise BioresConfigError("biores-pretrain-vision needs an image in every sample")
            image = downsample(load_image(record.image), draw)
            pixels = processor.process_images([image])["pixel_values"][0]
            self.pixels.append(pixels.mean(0, keepdim=True) if channels == 1 and pixels.shape[0] == 3 else pixels)
            given = {kind: answer for _, answer, kind in record.turns}
            for kind, names in classes.items():
                answers[kind].append(names.index(given[kind]) if kind in given else -100)
        self.labels = {kind: torch.tensor(v) for kind, v in answers.items()}


def _classes(records: Sequence[Any]) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {}
    for record in records:
        for _, answer, kind in record.turns:
            found.setdefault(kind, set()).add(answer)
    classes = {kind: sorted(v) for kind, v in sorted(found.items()) if len(v) > 1}
    if not classes:
        raise BioresConfigError("no question type has two or more distinct answers to pretrain on")
    return classes


def _pooled(tower: Any, pixels: Sequence[torch.Tensor]) -> torch.Tensor:
    from ..vision import encode_packed

    out = encode_packed(tower, list(pixels), feature_layer=-1, select="patch")
    parts = torch.split(out.features, [int(h) * int(w) for h, w in out.grid_hw])
    return torch.stack([p.mean(0) for p in parts])


def _accuracy(tower: Any, heads: torch.nn.ModuleDict, data: _Images, batch: int = 64) -> dict[str, float]:
    hits = {kind: 0 for kind in heads}
    totals = {kind: 0 for kind in heads}
    tower.eval()
    with torch.no_grad():
        for start in range(0, len(data.pixels), batch):
            pooled = _pooled(tower, data.pixels[start : start + batch])
            for kind, head in heads.items():
                target = data.labels[kind][start : start + batch]
                keep = target != -100
                hits[kind] += int((head(pooled).argmax(-1)[keep] == target[keep]).sum())
                totals[kind] += int(keep.sum())
    tower.train()
    return {kind: hits[kind] / totals[kind] for kind in heads if totals[kind]}


def pretrain(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Run ``biores-pretrain-vision``; returns the stats it writes."""
    from tqdm.auto import tqdm

    from .data import _synth_records, load_records, synth_root
    from .trainer import build_model_and_processor

    args = parse_args(argv)
    torch.manual_seed(args.seed)
    records = load_records(args.data_path, args.image_folder, args.max_samples)
    root = synth_root(args.data_path)
    test_records = _synth_records(root, "test") if root is not None and (root / "test.parquet").is_file() else []
    classes = _classes(records)
    model_args = ModelArguments(model_name_or_path="tiny", vision_tower=args.vision_tower, tiny_config=args.tiny_config)
    data_args = DataArguments(
        data_path=args.data_path,
        image_aspect_ratio="native",
        mixed_resolution=args.mixed_resolution,
        max_pixels=args.max_pixels,
    )
    model, processor = build_model_and_processor(model_args, data_args, records + test_records, args.seed)
    tower = model.model.vision_tower
    channels = int(tower.config.num_channels)
    start = time.time()
    train = _Images(
        records, processor, MixedResolution(args.mixed_resolution, args.seed).draws(len(records)), classes, channels
    )
    test_draws = MixedResolution(args.mixed_resolution, args.seed + 1).draws(len(test_records))
    test = _Images(test_records, processor, test_draws, classes, channels) if test_records else None
    torch.manual_seed(args.seed)
    heads = torch.nn.ModuleDict(
        {kind: torch.nn.Linear(tower.config.hidden_size, len(names)) for kind, names in classes.items()}
    )
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=0.0)
    warmup = max(1, args.warmup_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    rng = np.random.default_rng(args.seed)
    batch = min(args.per_device_train_batch_size, len(train.pixels))
    losses: list[float] = []
    bar = tqdm(range(args.max_steps), desc="pretrain vision", disable=args.disable_tqdm, file=sys.stderr)
    for step in bar:
        index = rng.choice(len(train.pixels), batch, replace=False)
        pooled = _pooled(tower, [train.pixels[i] for i in index])
        loss = sum(
            F.cross_entropy(head(pooled), train.labels[kind][index], ignore_index=-100) for kind, head in heads.items()
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    stats: dict[str, Any] = {
        "steps": args.max_steps,
        "batch_size": batch,
        "seconds": round(time.time() - start, 2),
        "first_loss": float(np.mean(losses[:5])),
        "final_loss": float(np.mean(losses[-5:])),
        "classes": classes,
        "train_accuracy": _accuracy(tower, heads, train),
        "test_accuracy": _accuracy(tower, heads, test) if test is not None else None,
        "resolutions": args.mixed_resolution or "native",
        "data_path": args.data_path,
    }
    out = Path(args.output_dir)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    tower.save_pretrained(partial)
    atomic_write_text(partial / STATS, json.dumps(stats, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    print(json.dumps({k: stats[k] for k in ("steps", "seconds", "final_loss", "test_accuracy")}))
    return stats


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        pretrain(argv)
    except BioresError as exc:
        print(f"biores-pretrain-vision: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
