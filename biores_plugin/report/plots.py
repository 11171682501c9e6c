"""The report's figures: accuracy against resolution and visual tokens, the train x inference heatmap."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io_utils import atomic_write_bytes
from .collect import Cell
from .tables import _order, matrix


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return buffer.getvalue()


def axis_unit(levels: Sequence[str]) -> str:
    """What a curve's levels measure: model-side pixel budgets, µm per pixel, or a cap on the longest side."""
    names = [str(level) for level in levels if str(level) != "native"]
    if names and all(name.startswith("max_pixels=") for name in names):
        return "model's pixel budget, max_pixels"
    if any("µm" in name for name in names):
        return "pixel size, µm/px"
    if any(name.startswith("max_pixels=") for name in names):
        return "longest side, px / max_pixels"
    return "longest side, px"


def plot_curves(cells: Sequence[Cell], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({c.dataset for c in cells})
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.6 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        mine = [c for c in cells if c.dataset == dataset]
        cols = _order(c.resolution for c in mine)
        for run in sorted({c.run for c in mine}):
            series = sorted((c for c in mine if c.run == run), key=lambda c: c.res_value)
            label = f"{run} (trained {series[0].train})" if series[0].train and series[0].train != run else run
            xs = [cols.index(c.resolution) for c in series]
            ys = [100 * c.accuracy for c in series]
            errs = [100 * (c.stderr or 0.0) for c in series]
            axes[row][0].errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
            with_tokens = [c for c in series if c.visual_tokens]
            if with_tokens:
                axes[row][1].plot(
                    [c.visual_tokens for c in with_tokens],
                    [100 * c.accuracy for c in with_tokens],
                    marker="o",
                    label=label,
                )
        axes[row][0].set_xticks(range(len(cols)), cols)
        axes[row][0].set_xlabel(f"inference resolution ({axis_unit(cols)})")
        axes[row][0].set_ylabel("accuracy (%)")
        axes[row][0].set_title(f"{dataset}: accuracy vs inference resolution")
        axes[row][1].set_xscale("log")
        axes[row][1].set_xlabel("visual tokens per image")
        axes[row][1].set_title(f"{dataset}: accuracy vs visual tokens")
        for ax in axes[row]:
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return path


def plot_heatmap(cells: Sequence[Cell], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({c.dataset for c in cells if c.train is not None})
    if not datasets:
        return None
    fig, axes = plt.subplots(
        1,
        len(datasets),
        figsize=(1.6 + 1.3 * max(len(_order(c.resolution for c in cells)), 3) * len(datasets), 3.8),
        squeeze=False,
    )
    for ax, dataset in zip(axes[0], datasets):
        rows, cols, table = matrix(cells, dataset)
        values = [[float("nan") if v is None else 100 * v for v in row] for row in table]
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("inference resolution")
        ax.set_ylabel("training resolution")
        ax.set_title(f"{dataset}: accuracy (%)")
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(
                        j, i, f"{v:.1f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=9
                    )
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return path
