"""From counts to the three result tables (rates, per-attribute KL and JS, pair summaries), bootstrap columns
included."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facemac.analysis.bootstrap import Replicates, bootstrap, percentile_interval
from facemac.analysis.counts import DatasetCounts
from facemac.analysis.divergence import pairwise_attribute_js, pairwise_attribute_kl
from facemac.analysis.joint import joint_layout, joint_matrix, with_pooled
from facemac.analysis.rates import wilson_interval

RATE_COLUMNS = ["dataset", "group", "attribute", "n", "positives", "rate", "ci_low", "ci_high"]
KL_ATTRIBUTE_COLUMNS = ["p", "q", "attribute", "kl", "js"]  # + ci_low, ci_high (KL), js_ci_low, js_ci_high
KL_PAIR_COLUMNS = ["p", "q", "kl_mean", "kl_sum", "kl_joint", "coverage", "joint_sparse_p", "joint_sparse_q",
                   "js_mean", "js_sum", "js_joint"]  # + <column>_ci_low/_ci_high
# A joint KL is reported as a finding only when at most JOINT_MAX_SPARSE of either dataset's images sit in combinations
# seen fewer than JOINT_MIN_COUNT times in that dataset; beyond that the alpha smoothing, not the data, sets its value
# and resampling biases its bootstrap (on the demo, 24 attributes x 2,000 images: >90 % sparse, intervals off the point).
JOINT_MIN_COUNT = 5
JOINT_MAX_SPARSE = 0.5


@dataclass
class Tables:
    """The analysis results (the CSVs, as DataFrames)."""

    rates: pd.DataFrame
    kl_attributes: pd.DataFrame
    kl_pairs: pd.DataFrame


def combine(counts: list[DatasetCounts], pooled: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n [D,A], positives [D,A], dropped [D,A]) with the pooled groups' rows appended."""
    n = np.stack([c.n for c in counts]).astype(np.float64)
    pos = np.stack([c.positives for c in counts])
    dropped = np.stack([c.dropped for c in counts]).astype(np.float64)
    if pooled:
        n = np.vstack([n] + [n[m].sum(0, keepdims=True) for m in pooled])
        pos = np.vstack([pos] + [pos[m].sum(0, keepdims=True) for m in pooled])
        dropped = np.vstack([dropped] + [dropped[m].sum(0, keepdims=True) for m in pooled])
    return n, pos, dropped


def sparse_share(joint_counts: np.ndarray) -> float:
    """Share of a dataset's rows whose attribute combination it holds fewer than JOINT_MIN_COUNT times."""
    total = float(joint_counts.sum())
    return float(joint_counts[joint_counts < JOINT_MIN_COUNT].sum()) / total if total > 0 else float("nan")


def _add_interval(frame: pd.DataFrame, prefix: str, samples: np.ndarray, level: float) -> None:
    """``<prefix>_low`` / ``<prefix>_high`` percentile columns from replicates [B, ...] (flattened to the rows)."""
    lo, hi = percentile_interval(samples, level)
    frame[f"{prefix}_low"], frame[f"{prefix}_high"] = lo.ravel(), hi.ravel()


def compute_tables(names: list[str], groups: list[str], attributes: list[str], counts: list[DatasetCounts],
                   pooled: list[list[int]], alpha: float, level: float, n_boot: int, seed: int,
                   soft: bool = False, with_dropped: bool = False, joint_columns: np.ndarray | None = None) -> Tables:
    """All results for datasets ``names`` (base datasets then pooled ones, in that order)."""
    n, pos, dropped = combine(counts, pooled)
    joint_columns = np.arange(len(attributes)) if joint_columns is None else np.asarray(joint_columns, np.int64)
    joint_enabled = len(joint_columns) > 0
    d_all, a = n.shape
    low, high = wilson_interval(pos, n, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = pos / n
    rates = pd.DataFrame({
        "dataset": np.repeat(names, a), "group": np.repeat(groups, a), "attribute": np.tile(attributes, d_all),
        "n": n.ravel().astype(np.int64), "positives": pos.ravel() if soft else pos.ravel().round().astype(np.int64),
        "rate": rate.ravel(), "ci_low": low.ravel(), "ci_high": high.ravel()})
    if with_dropped:
        rates["dropped"] = dropped.ravel().astype(np.int64)

    kl = pairwise_attribute_kl(pos, n, alpha)  # [D, D, A]
    js = pairwise_attribute_js(pos, n, alpha)
    jkl = np.full((d_all, d_all), np.nan)
    jjs = np.full((d_all, d_all), np.nan)
    cov = np.full((d_all, d_all), np.nan)
    sparse = np.full(d_all, np.nan)
    if joint_enabled:
        layout = joint_layout([c.joint_keys for c in counts], pooled)
        vectors = with_pooled(layout, [c.joint_counts for c in counts])
        jkl, cov, jjs = joint_matrix(layout, vectors, alpha)
        sparse = np.array([sparse_share(v) for v in vectors])
    reps: Replicates | None = None
    if n_boot > 0:
        reps = bootstrap(counts, pooled, alpha, n_boot, seed, joint_columns)
    ordered = [(i, j) for i in range(d_all) for j in range(d_all) if i != j]
    ii = np.array([i for i, _ in ordered], dtype=np.int64)
    jj = np.array([j for _, j in ordered], dtype=np.int64)
    kl_attr = pd.DataFrame({"p": np.repeat(np.array(names, dtype=object)[ii], a),
                            "q": np.repeat(np.array(names, dtype=object)[jj], a),
                            "attribute": np.tile(attributes, len(ordered)), "kl": kl[ii, jj].ravel()})
    pairs = pd.DataFrame({"p": np.array(names, dtype=object)[ii], "q": np.array(names, dtype=object)[jj],
                          "kl_mean": kl[ii, jj].mean(1), "kl_sum": kl[ii, jj].sum(1),
                          "kl_joint": jkl[ii, jj], "coverage": cov[ii, jj],
                          "joint_sparse_p": sparse[ii], "joint_sparse_q": sparse[jj]})
    kl_b = js_b = None
    if reps is not None:
        kl_b = pairwise_attribute_kl(reps.positives, reps.n, alpha)[:, ii, jj]  # [B, ordered pairs, A]
        js_b = pairwise_attribute_js(reps.positives, reps.n, alpha)[:, ii, jj]
        _add_interval(kl_attr, "ci", kl_b, level)
        for col, samples in (("kl_mean", kl_b.mean(-1)), ("kl_sum", kl_b.sum(-1)), ("kl_joint", reps.joint_kl[:, ii, jj]),
                             ("coverage", reps.coverage[:, ii, jj])):
            _add_interval(pairs, f"{col}_ci", samples, level)
    # Jensen-Shannon after the KL columns (existing column positions stay), with intervals where KL has them
    kl_attr["js"] = js[ii, jj].ravel()
    pairs["js_mean"], pairs["js_sum"], pairs["js_joint"] = js[ii, jj].mean(1), js[ii, jj].sum(1), jjs[ii, jj]
    if reps is not None:
        _add_interval(kl_attr, "js_ci", js_b, level)
        for col, samples in (("js_mean", js_b.mean(-1)), ("js_sum", js_b.sum(-1)), ("js_joint", reps.joint_js[:, ii, jj])):
            _add_interval(pairs, f"{col}_ci", samples, level)
    return Tables(rates=rates, kl_attributes=kl_attr, kl_pairs=pairs)
