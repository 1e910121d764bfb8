"""The names the analyze stage logs to its tracker (W&B): analysis/run.py logs under these and the dashboard's
panels import them from here (the divergence artifact's name is in facemac/lineage.py)."""

from __future__ import annotations

import re
from pathlib import Path

RATES, KL_ATTRIBUTES, KL_PAIRS = "rates", "kl_attributes", "kl_pairs"  # W&B tables of the CSVs of the same names
IDENTITY_STATS, IDENTITY_COMPARE = "identity_stats", "identity_compare"
POOLED_SUFFIX = "(pooled)"  # a group's pooled pseudo-dataset: real(pooled), synthetic(pooled)
FIGURE_FILES = ("rates.png", "kl_heatmap.png", "kl_asymmetry.png")  # analysis/plots.make_figures writes these


def figure_key(path: str | Path) -> str:
    """``figures/<stem>``: a figure logged as an image."""
    return f"figures/{Path(path).stem}"


def pooled_kl_key(p: str, q: str) -> str:
    """``kl_mean/<p>||<q>``: the summary value of one pooled pair."""
    return f"kl_mean/{p}||{q}"


FIGURES = tuple(figure_key(f) for f in FIGURE_FILES)
AUDITED_FACES = "audited_faces"  # with analyze.audit: image, dataset, path, identity, <attr>:person, <attr>:mac, ...


def strip_file(attribute: str) -> str:
    """``examples_<attribute>.png`` (analysis/examples.py), the attribute made safe for a file name."""
    return f"examples_{re.sub(r'[^A-Za-z0-9_.-]', '_', attribute)}.png"


def example_key(attribute: str) -> str:
    """``figures/examples_<attribute>``: an example strip logged as an image."""
    return figure_key(strip_file(attribute))
