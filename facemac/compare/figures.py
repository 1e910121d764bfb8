"""Comparison figures: per-attribute quality of MACs, and per-attribute KL differences between analyses."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from facemac.compare.tables import plotted_pairs  # noqa: E402


def _annotate_cells(ax, grid: np.ndarray, fmt: str, threshold: float | None = None,
                    dark_beyond: float | None = None) -> None:
    """Numbers in the cells, white on dark ones (below ``threshold``, or beyond ``dark_beyond`` in magnitude)."""
    if grid.size > 600:  # too many cells to read numbers in
        return
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            dark = (threshold is not None and v < threshold) or (dark_beyond is not None and abs(v) > dark_beyond)
            text = format(v, fmt)
            if text.lstrip("+-").strip("0.") == "":  # rounds to zero: no sign, fewer digits to read past
                text = "0"
            ax.text(j, i, text, ha="center", va="center", fontsize=6, color="white" if dark else "black")


def plot_train_heatmap(wide: pd.DataFrame, path: Path) -> Path:
    """attribute × run, test balanced accuracy, one number per cell."""
    grid = wide.to_numpy(float)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * wide.shape[1] + 3), max(3.0, 0.26 * wide.shape[0] + 1.6)))
    lo = float(np.nanmin(grid)) if np.isfinite(grid).any() else 0.5
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=min(lo, 0.95), vmax=1.0, interpolation="nearest")
    ax.set_xticks(np.arange(wide.shape[1]), list(wide.columns), rotation=30, ha="right", fontsize=7)
    ax.set_yticks(np.arange(wide.shape[0]), list(wide.index), fontsize=7)
    _annotate_cells(ax, grid, ".3f", threshold=lo + 0.5 * (1.0 - lo))
    fig.colorbar(im, ax=ax, label="test balanced accuracy")
    ax.set_title("MAC quality per attribute (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_kl_differences(diff: pd.DataFrame, run: str, baseline: str, path: Path) -> Path:
    """attribute × ordered pair, KL(run) − KL(baseline) in nats (diverging colours around 0)."""
    frame = diff.assign(pair=diff["p"] + " ‖ " + diff["q"])
    pairs = [f"{p} ‖ {q}" for p, q in plotted_pairs(list(dict.fromkeys(zip(frame["p"], frame["q"]))))]
    attributes = list(dict.fromkeys(frame["attribute"]))
    grid = frame.pivot(index="attribute", columns="pair", values="delta").reindex(index=attributes, columns=pairs)
    values = grid.to_numpy(float)
    bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    bound = bound if bound > 0 else 1.0
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(pairs) + 3.5), max(3.0, 0.26 * len(attributes) + 2.2)))
    im = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    ax.set_xticks(np.arange(len(pairs)), pairs, rotation=60, ha="right", fontsize=6)
    ax.set_yticks(np.arange(len(attributes)), attributes, fontsize=7)
    _annotate_cells(ax, values, "+.2f", dark_beyond=0.6 * bound)
    fig.colorbar(im, ax=ax, label="KL difference [nats]")
    ax.set_title(f"Per-attribute KL: {run} minus {baseline}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
