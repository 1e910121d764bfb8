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


def plot_kl_heatmap(kl_attributes: pd.DataFrame, focus: list[tuple[str, str]], path: Path) -> Path:
    """Ordered pairs (both directions of each focus pair) x attributes, colour = KL(P||Q) in nats."""
    frame = kl_attributes.assign(pair=kl_attributes["p"] + " || " + kl_attributes["q"])
    pairs = [f"{a} || {b}" for p, q in focus for a, b in ((p, q), (q, p))]
    attributes = list(dict.fromkeys(frame["attribute"]))
    grid = frame.pivot(index="pair", columns="attribute", values="kl").loc[pairs, attributes].to_numpy()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(attributes) + 3), max(3.0, 0.25 * len(pairs) + 1.5)))
    im = ax.imshow(grid, aspect="auto", cmap="magma_r", interpolation="nearest")
    ax.set_xticks(np.arange(len(attributes)), attributes, rotation=90, fontsize=6)
    ax.set_yticks(np.arange(len(pairs)), pairs, fontsize=6)
    fig.colorbar(im, ax=ax, label="KL(P || Q) [nats]")
    ax.set_title("Per-attribute KL divergence")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_asymmetry(kl_attributes: pd.DataFrame, focus: list[tuple[str, str]], path: Path) -> Path:
    """For each focus pair (P, Q), KL(P||Q) against KL(Q||P) per attribute; points off the diagonal are asymmetric."""
    fwd = kl_attributes.set_index(["p", "q", "attribute"])["kl"].sort_index()
    fig, ax = plt.subplots(figsize=(6.5, 6))
    top = 0.0
    for p, q in focus:
        x = fwd.loc[(p, q)]
        y = fwd.loc[(q, p)].reindex(x.index)
        ax.scatter(x, y, s=12, alpha=0.75, label=f"P={p}, Q={q}")
        top = max(top, float(np.nanmax([x.max(), y.max()])))
    top = top * 1.05 if top > 0 else 1.0
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("KL(P || Q) [nats]")
    ax.set_ylabel("KL(Q || P) [nats]")
    ax.set_title("KL asymmetry: one point per attribute (above the line: KL(Q||P) larger)", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
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
