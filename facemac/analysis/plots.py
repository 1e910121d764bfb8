"""Figures for people: rates across datasets, the KL heatmap, and the KL(P||Q) vs KL(Q||P) asymmetry plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from facemac.analysis.logged import FIGURE_FILES  # noqa: E402


def _interval_dots(ax, frame: pd.DataFrame, value: str, xlabel: str, title: str, legend: bool = True) -> None:
    """One row per attribute, one dot per dataset with its [ci_low, ci_high] interval (NaN intervals drawn bare)."""
    attributes = list(dict.fromkeys(frame["attribute"]))
    datasets = list(dict.fromkeys(frame["dataset"]))
    offsets = np.linspace(-0.3, 0.3, len(datasets)) if len(datasets) > 1 else [0.0]
    y = np.arange(len(attributes))
    for off, name in zip(offsets, datasets):
        sub = frame[frame["dataset"] == name].set_index("attribute").reindex(attributes)
        err = np.nan_to_num(np.vstack([sub[value] - sub["ci_low"], sub["ci_high"] - sub[value]]).clip(0))
        ax.errorbar(sub[value], y + off, xerr=err, fmt="o", ms=3, capsize=1.5, lw=0.8, label=name)
    ax.set_yticks(y, attributes, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="lower right")


def plot_rates(rates: pd.DataFrame, path: Path) -> Path:
    """Per-attribute rate of every dataset with its Wilson interval (one row per attribute)."""
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * rates["attribute"].nunique() + 1.2)))
    _interval_dots(ax, rates, "rate", "rate (Wilson interval)", "Attribute rates per dataset")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


MAX_CELL_VALUES = 700  # beyond this many cells the numbers are too small to read: colour only
# kl_asymmetry.png names points by their attribute: the first pair's (the report's headline pair) largest
# KL(P||Q) + KL(Q||P), then the largest of the other pairs
ASYMMETRY_LABELS_FIRST, ASYMMETRY_LABELS_OTHERS = 6, 4


def plot_kl_heatmap(kl_attributes: pd.DataFrame, focus: list[tuple[str, str]], path: Path) -> Path:
    """Ordered pairs (both directions of each focus pair) x attributes, colour = KL(P||Q) in nats, the value in each
    cell (two digits: the demo's KLs run 0.00-0.5, a real study's to ~1)."""
    frame = kl_attributes.assign(pair=kl_attributes["p"] + " ‖ " + kl_attributes["q"])
    pairs = [f"{a} ‖ {b}" for p, q in focus for a, b in ((p, q), (q, p))]
    attributes = list(dict.fromkeys(frame["attribute"]))
    grid = frame.pivot(index="pair", columns="attribute", values="kl").loc[pairs, attributes].to_numpy()
    label_in = max(len(p) for p in pairs) * 0.075  # inches the row labels take at 8 pt
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(attributes) + label_in + 2.0),
                                    max(3.0, 0.36 * len(pairs) + 2.2)))
    im = ax.imshow(grid, aspect="auto", cmap="magma_r", interpolation="nearest")
    ax.set_xticks(np.arange(len(attributes)), attributes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(pairs)), pairs, fontsize=8)
    if grid.size <= MAX_CELL_VALUES:
        top = float(np.nanmax(grid)) if np.isfinite(grid).any() else 0.0
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, "0" if round(v, 2) == 0 else f"{v:.2f}".lstrip("0"), ha="center", va="center",
                        fontsize=6.5, color="white" if top > 0 and v > 0.55 * top else "black")
    fig.colorbar(im, ax=ax, label="KL(P ‖ Q) [nats]", fraction=0.04, pad=0.02)
    ax.set_title("Per-attribute KL divergence (row: P ‖ Q)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_asymmetry(kl_attributes: pd.DataFrame, focus: list[tuple[str, str]], path: Path) -> Path:
    """For each focus pair (P, Q), KL(P||Q) against KL(Q||P) per attribute; points off the diagonal are asymmetric.
    The points with the largest KL both ways together are named by their attribute."""
    fwd = kl_attributes.set_index(["p", "q", "attribute"])["kl"].sort_index()
    fig, ax = plt.subplots(figsize=(7, 6.5))
    top = 0.0
    points = []  # (pair index, x + y, x, y, attribute, colour)
    for k, (p, q) in enumerate(focus):
        x = fwd.loc[(p, q)]
        y = fwd.loc[(q, p)].reindex(x.index)
        dots = ax.scatter(x, y, s=14, alpha=0.75, label=f"P={p}, Q={q}")
        top = max(top, float(np.nanmax([x.max(), y.max()])))
        colour = dots.get_facecolor()[0]
        points += [(k, xv + yv, xv, yv, a, colour) for a, xv, yv in zip(x.index, x.to_numpy(), y.to_numpy())
                   if np.isfinite(xv) and np.isfinite(yv) and xv + yv > 0]
    top = top * 1.08 if top > 0 else 1.0
    by_size = sorted(points, key=lambda t: t[1], reverse=True)
    named = ([t for t in by_size if t[0] == 0][:ASYMMETRY_LABELS_FIRST]
             + [t for t in by_size if t[0] != 0][:ASYMMETRY_LABELS_OTHERS])
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    placed: list[tuple[float, float, bool]] = []  # label anchors in points: (x, y, extends left)
    scale = 72.0 * 6.5 / top  # data units -> points, roughly (the axes span most of the 6.5-inch figure)
    for k, (_, _, xv, yv, attribute, colour) in enumerate(named):
        right = xv > 0.75 * top  # near the right edge: the name goes to the left of its point
        dy = next((d for d in (4, -11, 15, -22, 26, -33, 37) if not any(
            abs(yv * scale + d - py) < 9 and abs(xv * scale - px) < 70 for px, py, _ in placed)), 4)
        placed.append((xv * scale, yv * scale + dy, right))
        ax.annotate(attribute, (xv, yv), xytext=(-5 if right else 5, dy), textcoords="offset points",
                    ha="right" if right else "left", va="center", fontsize=7.5, color=colour,
                    fontweight="bold" if k < ASYMMETRY_LABELS_FIRST else "normal",
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5} if abs(dy) > 5 else None)
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("KL(P ‖ Q) [nats]")
    ax.set_ylabel("KL(Q ‖ P) [nats]")
    ax.set_title("KL asymmetry: one point per attribute (above the line: KL(Q‖P) larger)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_identity(stats: pd.DataFrame, path: Path) -> Path:
    """Share of identities whose images disagree, per dataset: identity-level attributes (high = drift) beside
    image-level ones (low = too little variation), with identity-bootstrap intervals."""
    panels = [(lvl, stats[stats["level"] == lvl]) for lvl in ("identity", "image", "unclassified")]
    panels = [(lvl, frame) for lvl, frame in panels if len(frame)]
    rows = max(frame["attribute"].nunique() for _, frame in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), max(3.0, 0.28 * rows + 1.4)), squeeze=False)
    titles = {"identity": "Identity-level attributes: drift (should be low)",
              "image": "Image-level attributes: variation (real photos vary)",
              "unclassified": "Unclassified attributes (analyze.identity.levels)"}
    for ax, (lvl, frame) in zip(axes[0], panels):
        _interval_dots(ax, frame, "mixed_share", "share of identities whose images disagree", titles[lvl],
                       legend=False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_figures(rates: pd.DataFrame, kl_attributes: pd.DataFrame, focus: list[tuple[str, str]],
                 folder: Path) -> list[Path]:
    """Write all figures into ``folder`` and return their paths; ``focus`` = the (P, Q) pairs worth plotting."""
    folder.mkdir(parents=True, exist_ok=True)
    rates_png, heatmap_png, asymmetry_png = FIGURE_FILES  # the names W&B shows them under (analysis/logged.py)
    out = [plot_rates(rates, folder / rates_png)]
    if len(kl_attributes) and focus:
        out += [plot_kl_heatmap(kl_attributes, focus, folder / heatmap_png),
                plot_asymmetry(kl_attributes, focus, folder / asymmetry_png)]
    return out
