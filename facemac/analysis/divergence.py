"""KL divergences in nats between attribute distributions, with additive smoothing so every value stays finite, and the
Jensen–Shannon divergence (symmetric, at most ln 2 nats) on the same smoothed distributions."""

from __future__ import annotations

import numpy as np
from scipy.special import rel_entr


def bernoulli_kl(p_rate: np.ndarray | float, q_rate: np.ndarray | float) -> np.ndarray:
    """KL(Ber(p) || Ber(q)) in nats, elementwise; the 'true' divergence when the rates are known (demo profiles)."""
    p = np.asarray(p_rate, dtype=np.float64)
    q = np.asarray(q_rate, dtype=np.float64)
    return rel_entr(p, q) + rel_entr(1.0 - p, 1.0 - q)


def jensen_shannon(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    """JS(P, Q) = KL(P || M)/2 + KL(Q || M)/2 with M = (P + Q)/2, in nats, for probability vectors along ``axis``.

    Symmetric, finite whatever the zeros, and at most ln 2 (disjoint supports); broadcasts."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = (p + q) / 2.0
    return 0.5 * (rel_entr(p, m).sum(axis) + rel_entr(q, m).sum(axis))


def bernoulli_js(p_rate: np.ndarray | float, q_rate: np.ndarray | float) -> np.ndarray:
    """JS(Ber(p), Ber(q)) in nats, elementwise."""
    p = np.asarray(p_rate, dtype=np.float64)
    q = np.asarray(q_rate, dtype=np.float64)
    return jensen_shannon(np.stack([p, 1.0 - p], -1), np.stack([q, 1.0 - q], -1))


def smoothed_rate(positives: np.ndarray | float, n: np.ndarray | float, alpha: float) -> np.ndarray:
    """(positives + alpha) / (n + 2 alpha): the rate after adding ``alpha`` pseudo-counts to each of the two outcomes."""
    pos = np.asarray(positives, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos + alpha) / (n + 2.0 * alpha)


def attribute_kl(pos_p: np.ndarray, n_p: np.ndarray, pos_q: np.ndarray, n_q: np.ndarray,
                 alpha: float) -> np.ndarray:
    """Per-attribute KL(P || Q) between the smoothed Bernoulli rates of two datasets (broadcasts)."""
    return bernoulli_kl(smoothed_rate(pos_p, n_p, alpha), smoothed_rate(pos_q, n_q, alpha))


def pairwise_attribute_kl(pos: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """[..., D, A] counts -> [..., D, D, A] with entry [i, j, a] = KL(dataset i || dataset j) for attribute a."""
    rate = smoothed_rate(pos, n, alpha)
    return bernoulli_kl(rate[..., :, None, :], rate[..., None, :, :])


def pairwise_attribute_js(pos: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """[..., D, A] counts -> [..., D, D, A] Jensen–Shannon divergences between the smoothed rates (as the KL uses)."""
    rate = smoothed_rate(pos, n, alpha)
    return bernoulli_js(rate[..., :, None, :], rate[..., None, :, :])


def joint_js(counts_p: np.ndarray, counts_q: np.ndarray, alpha: float) -> float:
    """JS between two joint count vectors aligned on the same combinations, smoothed on the union of the observed
    ones exactly like ``joint_kl``."""
    cp = np.asarray(counts_p, dtype=np.float64)
    cq = np.asarray(counts_q, dtype=np.float64)
    union = (cp > 0) | (cq > 0)
    k = int(union.sum())
    if k == 0 or cp.sum() + alpha * k <= 0 or cq.sum() + alpha * k <= 0:
        return float("nan")
    p = (cp[union] + alpha) / (cp.sum() + alpha * k)
    q = (cq[union] + alpha) / (cq.sum() + alpha * k)
    return float(jensen_shannon(p, q))


def joint_kl(counts_p: np.ndarray, counts_q: np.ndarray, alpha: float) -> tuple[float, float]:
    """(KL(P || Q), coverage) over attribute combinations from two count vectors aligned on the same combinations.

    The support is the union of combinations observed in P or Q (a combination with zero count in both is ignored);
    each combination in it gets ``alpha`` added in both P and Q before normalising. Coverage is the fraction of P's
    unsmoothed mass that falls on combinations Q also has (1.0: Q covers everything P produces).
    """
    cp = np.asarray(counts_p, dtype=np.float64)
    cq = np.asarray(counts_q, dtype=np.float64)
    union = (cp > 0) | (cq > 0)
    k = int(union.sum())
    total_p, total_q = cp.sum(), cq.sum()
    coverage = float(cp[cq > 0].sum() / total_p) if total_p > 0 else float("nan")
    if k == 0 or total_p + alpha * k <= 0 or total_q + alpha * k <= 0:
        return float("nan"), coverage
    p = (cp[union] + alpha) / (total_p + alpha * k)
    q = (cq[union] + alpha) / (total_q + alpha * k)
    return float(rel_entr(p, q).sum()), coverage
