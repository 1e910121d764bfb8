"""From counts to the three result tables (rates, per-attribute KL and JS, pair summaries), bootstrap columns
included."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facemac.analysis.bootstrap import Replicates, bootstrap, centred_interval
from facemac.analysis.correction.engine import Correction, correct_rates, face_weights, shared_clusters
from facemac.analysis.counts import DatasetCounts
from facemac.analysis.divergence import pairwise_attribute_js, pairwise_attribute_kl
from facemac.analysis.joint import joint_layout, joint_matrix, with_pooled

# rate / ci_*: the corrected estimate and its interval; positives: the MAC's (counted) positives, rate_counted =
# positives / n; correction: audit | validation | none (pooled: the members' joined with '+')
RATE_COLUMNS = ["dataset", "group", "attribute", "n", "positives", "rate", "ci_low", "ci_high", "rate_counted",
                "correction"]
# kl / js from the corrected rates; kl_counted / js_counted from the MAC's counts; correction: "<p's>/<q's>"
KL_ATTRIBUTE_COLUMNS = ["p", "q", "attribute", "kl", "js", "kl_counted", "js_counted",
                        "correction"]  # + ci_low, ci_high (KL), js_ci_low, js_ci_high
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


def _add_interval(frame: pd.DataFrame, prefix: str, samples: np.ndarray, estimate: np.ndarray, level: float,
                  bounds: tuple[float, float] = (0.0, np.inf)) -> None:
    """``<prefix>_low`` / ``<prefix>_high`` columns from replicates [B, ...] (flattened to the rows): the
    bootstrap distribution re-centred on the estimate (analysis/bootstrap.py ``centred_interval``), since plug-in
    divergences are biased upwards under resampling and a percentile interval can miss its own estimate."""
    lo, hi = centred_interval(samples, np.asarray(estimate), level, bounds)
    frame[f"{prefix}_low"], frame[f"{prefix}_high"] = lo.ravel(), hi.ravel()


def compute_tables(names: list[str], groups: list[str], attributes: list[str], counts: list[DatasetCounts],
                   pooled: list[list[int]], alpha: float, level: float, n_boot: int, seed: int,
                   soft: bool = False, with_dropped: bool = False, joint_columns: np.ndarray | None = None,
                   corrections: list[Correction | None] | None = None) -> Tables:
    """All results for datasets ``names`` (base datasets then pooled ones, in that order); ``corrections`` per base
    dataset (None: counted). Rates, per-attribute KL/JS and their summaries use the corrected rates; the joint KL,
    JS and coverage stay counted (a correction of 2^k combination cells from a few hundred audited faces is not
    honest)."""
    n, pos, dropped = combine(counts, pooled)
    base = len(counts)
    corrections = list(corrections) if corrections is not None else [None] * base
    joint_columns = np.arange(len(attributes)) if joint_columns is None else np.asarray(joint_columns, np.int64)
    joint_enabled = len(joint_columns) > 0
    d_all, a = n.shape
    reps: Replicates | None = None
    shared = shared_clusters(corrections, counts) if n_boot > 0 else {}
    if n_boot > 0:
        reps = bootstrap(counts, pooled, alpha, n_boot, seed, joint_columns,
                         track_units={d: u[u >= 0] for d, u in shared.items()})
    cr = correct_rates(n[:base], pos[:base], corrections, pooled, level, seed,
                       None if reps is None else reps.n[:, :base], None if reps is None else reps.positives[:, :base],
                       face_weights(shared, reps.unit_weights) if reps is not None else None)
    rates = pd.DataFrame({
        "dataset": np.repeat(names, a), "group": np.repeat(groups, a), "attribute": np.tile(attributes, d_all),
        "n": n.ravel().astype(np.int64), "positives": pos.ravel() if soft else pos.ravel().round().astype(np.int64),
        "rate": cr.rate.ravel(), "ci_low": cr.low.ravel(), "ci_high": cr.high.ravel()})
    if with_dropped:
        rates["dropped"] = dropped.ravel().astype(np.int64)
    rates["rate_counted"] = cr.counted.ravel()
    rates["correction"] = np.repeat(cr.method, a)

    kl = pairwise_attribute_kl(cr.positives, n, alpha)  # [D, D, A], from the corrected rates
    js = pairwise_attribute_js(cr.positives, n, alpha)
    jkl = np.full((d_all, d_all), np.nan)
    jjs = np.full((d_all, d_all), np.nan)
    cov = np.full((d_all, d_all), np.nan)
    sparse = np.full(d_all, np.nan)
    if joint_enabled:
        layout = joint_layout([c.joint_keys for c in counts], pooled)
        vectors = with_pooled(layout, [c.joint_counts for c in counts])
        jkl, cov, jjs = joint_matrix(layout, vectors, alpha)
        sparse = np.array([sparse_share(v) for v in vectors])
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
    ln2 = (0.0, float(np.log(2.0)))
    if reps is not None:
        rep_pos = cr.replicates * reps.n  # corrected positives per replicate
        kl_b = pairwise_attribute_kl(rep_pos, reps.n, alpha)[:, ii, jj]  # [B, ordered pairs, A]
        js_b = pairwise_attribute_js(rep_pos, reps.n, alpha)[:, ii, jj]
        _add_interval(kl_attr, "ci", kl_b, kl_attr["kl"].to_numpy().reshape(len(ordered), a), level)
        for col, samples, bounds in (("kl_mean", kl_b.mean(-1), (0, np.inf)), ("kl_sum", kl_b.sum(-1), (0, np.inf)),
                                     ("kl_joint", reps.joint_kl[:, ii, jj], (0, np.inf)),
                                     ("coverage", reps.coverage[:, ii, jj], (0, 1))):
            _add_interval(pairs, f"{col}_ci", samples, pairs[col].to_numpy(), level, bounds)
    # Jensen-Shannon after the KL columns (existing column positions stay), with intervals where KL has them
    kl_attr["js"] = js[ii, jj].ravel()
    pairs["js_mean"], pairs["js_sum"], pairs["js_joint"] = js[ii, jj].mean(1), js[ii, jj].sum(1), jjs[ii, jj]
    if reps is not None:
        _add_interval(kl_attr, "js_ci", js_b, js[ii, jj], level, ln2)
        for col, samples, bounds in (("js_mean", js_b.mean(-1), ln2), ("js_sum", js_b.sum(-1), (0, a * ln2[1])),
                                     ("js_joint", reps.joint_js[:, ii, jj], ln2)):
            _add_interval(pairs, f"{col}_ci", samples, pairs[col].to_numpy(), level, bounds)
    # the MAC's counted divergences beside the corrected ones, and which correction each side got
    kl_c, js_c = pairwise_attribute_kl(pos, n, alpha), pairwise_attribute_js(pos, n, alpha)
    kl_attr["kl_counted"], kl_attr["js_counted"] = kl_c[ii, jj].ravel(), js_c[ii, jj].ravel()
    method = np.array(cr.method, dtype=object)
    kl_attr["correction"] = np.repeat(method[ii] + "/" + method[jj], a)
    pairs["kl_mean_counted"], pairs["js_mean_counted"] = kl_c[ii, jj].mean(1), js_c[ii, jj].mean(1)
    pairs["correction"] = method[ii] + "/" + method[jj]
    return Tables(rates=rates, kl_attributes=kl_attr, kl_pairs=pairs)
