"""Figures for people: rates across datasets, the KL heatmap, and the KL(P||Q) vs KL(Q||P) asymmetry plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_rates(rates: pd.DataFrame, path: Path) -> Path:
    """Per-attribute rate of every dataset with its Wilson interval (one row per attribute)."""
    attributes = list(dict.fromkeys(rates["attribute"]))
    datasets = list(dict.fromkeys(rates["dataset"]))
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(attributes) + 1.2)))
    offsets = np.linspace(-0.3, 0.3, len(datasets)) if len(datasets) > 1 else [0.0]
    y = np.arange(len(attributes))
    for off, name in zip(offsets, datasets):
        sub = rates[rates["dataset"] == name].set_index("attribute").loc[attributes]
        err = np.vstack([sub["rate"] - sub["ci_low"], sub["ci_high"] - sub["rate"]]).clip(0)
        ax.errorbar(sub["rate"], y + off, xerr=err, fmt="o", ms=3, capsize=1.5, lw=0.8, label=name)
    ax.set_yticks(y, attributes, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("rate (Wilson interval)")
    ax.set_title("Attribute rates per dataset")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
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


def make_figures(rates: pd.DataFrame, kl_attributes: pd.DataFrame, focus: list[tuple[str, str]],
                 folder: Path) -> list[Path]:
    """Write all figures into ``folder`` and return their paths; ``focus`` = the (P, Q) pairs worth plotting."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [plot_rates(rates, folder / "rates.png")]
    if len(kl_attributes) and focus:
        out += [plot_kl_heatmap(kl_attributes, focus, folder / "kl_heatmap.png"),
                plot_asymmetry(kl_attributes, focus, folder / "kl_asymmetry.png")]
    return out
