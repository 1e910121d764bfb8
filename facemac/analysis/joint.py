"""Joint KL and JS between datasets stored sparsely: each (pseudo-)dataset holds counts on its own observed
combinations, and a pair only touches the combinations both share. Used for point estimates and every bootstrap
replicate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy

from facemac.analysis.arrays import sorted_unique


@dataclass
class JointLayout:
    """Observed combinations of every dataset (pooled ones appended), where members sit inside pooled supports, and
    the shared combinations (index pairs) of every unordered pair."""

    supports: list[np.ndarray]
    pooled: list[list[int]]
    maps: list[list[np.ndarray]]
    shared: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]

    @property
    def base(self) -> int:
        return len(self.supports) - len(self.pooled)


def joint_layout(keys: list[np.ndarray], pooled: list[list[int]]) -> JointLayout:
    """Layout from each base dataset's sorted combination codes and the pooled groups' member lists."""
    supports = list(keys)
    maps = []
    for members in pooled:
        union = sorted_unique(np.concatenate([supports[m] for m in members]))
        maps.append([np.searchsorted(union, supports[m]) for m in members])
        supports.append(union)
    shared = {}
    for i in range(len(supports)):
        for j in range(i + 1, len(supports)):
            _, ii, jj = np.intersect1d(supports[i], supports[j], assume_unique=True, return_indices=True)
            shared[(i, j)] = (ii, jj)
    return JointLayout(supports=supports, pooled=pooled, maps=maps, shared=shared)


def with_pooled(layout: JointLayout, vectors: list[np.ndarray]) -> list[np.ndarray]:
    """Base datasets' count vectors plus the pooled groups' (members summed on the union of their combinations)."""
    out = list(vectors)
    for p, members in enumerate(layout.pooled):
        vec = np.zeros(len(layout.supports[layout.base + p]))
        for m, where in zip(members, layout.maps[p]):
            vec[where] += vectors[m]
        out.append(vec)
    return out


def joint_matrix(layout: JointLayout, vectors: list[np.ndarray],
                 alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """([D, D] KL(i || j), [D, D] coverage of i by j, [D, D] JS(i, j)) for count vectors aligned with
    ``layout.supports``."""
    d = len(vectors)
    kl = np.full((d, d), np.nan)
    cov = np.full((d, d), np.nan)
    js = np.full((d, d), np.nan)
    sums = [_Support(v, alpha) for v in vectors]
    for (i, j), (ii, jj) in layout.shared.items():
        p_both, q_both = vectors[i][ii], vectors[j][jj]
        kl[i, j], cov[i, j], kl[j, i], cov[j, i] = fast_joint_kl(sums[i], sums[j], p_both, q_both, alpha)
        js[i, j] = js[j, i] = fast_joint_js(sums[i], sums[j], p_both, q_both, alpha)
    return kl, cov, js


class _Support:
    """Joint counts of one (pseudo-)dataset on its own observed combinations, with the sums the KL needs."""

    def __init__(self, counts: np.ndarray, alpha: float):
        shifted = counts[counts > 0] + alpha
        logs = np.log(shifted)
        self.total = float(counts.sum())
        self.k = len(shifted)
        self.a = float((shifted * logs).sum())  # sum (c + alpha) log(c + alpha) over observed combinations
        self.l = float(logs.sum())  # sum log(c + alpha) over observed combinations
        self.values, self.multiplicity = _distinct(counts[counts > 0])  # the JS sums over them


def _distinct(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, how often each occurs): a bincount for integer counts (hard labels, bootstrap weights), which
    is O(n) where sorting a million combinations per replicate is not."""
    ints = counts.astype(np.int64)
    if len(counts) and np.array_equal(ints, counts) and ints.max() <= 4 * len(counts) + 1024:
        tally = np.bincount(ints)
        values = np.flatnonzero(tally)
        return values.astype(np.float64), tally[values].astype(np.float64)
    values, mult = np.unique(counts, return_counts=True)
    return values, mult.astype(np.float64)


def _js_terms(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a log(a/m) + b log(b/m) with m = (a + b)/2: twice the JS contribution of one outcome."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return xlogy(a, a) + xlogy(b, b) - xlogy(a + b, (a + b) / 2.0)


def fast_joint_js(p: _Support, q: _Support, p_both: np.ndarray, q_both: np.ndarray, alpha: float) -> float:
    """Joint JS from per-dataset sums plus the counts on the shared combinations; equals ``divergence.joint_js``.

    On the union U of observed combinations (k of them), p = (c_P + alpha)/Z_P and q likewise. A combination only P
    has gets q0 = alpha/Z_Q, so its term depends on c_P alone: the sum over P's own combinations runs over P's
    distinct counts (few), minus the shared ones; the same for Q. Cost O(shared + distinct counts) per pair.
    """
    both = (p_both > 0) & (q_both > 0)
    cp, cq = p_both[both], q_both[both]
    k = p.k + q.k - int(both.sum())
    zp, zq = p.total + alpha * k, q.total + alpha * k
    if k == 0 or zp <= 0 or zq <= 0:
        return float("nan")
    p0, q0 = alpha / zp, alpha / zq
    # every combination of P as if Q lacked it, every one of Q as if P lacked it ...
    total = (p.multiplicity * _js_terms((p.values + alpha) / zp, q0)).sum()
    total += (q.multiplicity * _js_terms(p0, (q.values + alpha) / zq)).sum()
    # ... corrected on the shared ones: g(ps, qs) - g(ps, q0) - g(p0, qs), whose ps log ps and qs log qs cancel;
    # evaluated once per distinct (c_P, c_Q) pair
    cp, cq, mult = _distinct_pairs(cp, cq)
    ps, qs = (cp + alpha) / zp, (cq + alpha) / zq
    total += (mult * (_half_log(ps + q0) + _half_log(p0 + qs) - _half_log(ps + qs))).sum()
    total -= mult.sum() * float(xlogy(p0, p0) + xlogy(q0, q0))
    return float(max(total, 0.0) / 2.0)


def _distinct_pairs(cp: np.ndarray, cq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c_P, c_Q, multiplicity) of the distinct count pairs when the counts are integers (as in every replicate:
    mostly a handful of pairs), else every pair once."""
    width = float(cq.max()) + 1.0 if len(cq) else 1.0
    if not len(cp) or cp.max() * width + width > 2.0**52 or not (np.array_equal(cp, np.rint(cp))
                                                                 and np.array_equal(cq, np.rint(cq))):
        return cp, cq, np.ones(len(cp))
    keys, mult = _distinct(cp * width + cq)
    return np.floor_divide(keys, width), np.mod(keys, width), mult


def _half_log(m: np.ndarray) -> np.ndarray:
    """m log(m / 2)."""
    return xlogy(m, m / 2.0)


def fast_joint_kl(p: _Support, q: _Support, p_both: np.ndarray, q_both: np.ndarray,
                  alpha: float) -> tuple[float, float, float, float]:
    """Joint KL both ways and both coverages from per-dataset sums plus the counts on the shared combinations.

    Equal to ``divergence.joint_kl`` on aligned vectors (tested), but costs O(shared combinations) per pair instead of
    O(union): with U = observed-in-P-or-Q, k = |U|, Z_P = N_P + alpha k,
    sum_U p log p = [sum_P (c+a) log(c+a) + (k - k_P) a log a] / Z_P - log Z_P and
    sum_U p log q = [sum_U c_P log(c_Q+a) + a sum_U log(c_Q+a)] / Z_P - log Z_Q, where c_P log(c_Q+a) is nonzero
    off the shared set only as c_P log a, and sum_U log(c_Q+a) = sum_Q log(c+a) + (k - k_Q) log a.
    """
    both = (p_both > 0) & (q_both > 0)
    cp, cq = p_both[both], q_both[both]
    k = p.k + q.k - int(both.sum())
    if k == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    sp, sq = float(cp.sum()), float(cq.sum())
    if p.k == q.k == len(cp) and np.array_equal(cp, cq):  # the same distribution (a dataset vs its one-member pool)
        return 0.0, 1.0, 0.0, 1.0  # exactly; the sums below cancel only to within +-1e-15
    x_pq = float((cp * np.log(cq + alpha)).sum())
    x_qp = float((cq * np.log(cp + alpha)).sum())

    def one_way(a: _Support, b: _Support, sa: float, x_ab: float) -> float:
        za, zb = a.total + alpha * k, b.total + alpha * k
        if za <= 0 or zb <= 0:
            return float("nan")
        self_term = (a.a + (k - a.k) * xlogy(alpha, alpha)) / za - np.log(za)
        cross = (xlogy(a.total - sa, alpha) + x_ab + alpha * b.l + (k - b.k) * xlogy(alpha, alpha)) / za - np.log(zb)
        kl = float(self_term - cross)
        return 0.0 if kl < 0 else kl  # KL >= 0; the two sums cancel to -1e-15 for identical counts (a one-member pool)

    cov_pq = sp / p.total if p.total > 0 else float("nan")
    cov_qp = sq / q.total if q.total > 0 else float("nan")
    return one_way(p, q, sp, x_pq), cov_pq, one_way(q, p, sq, x_qp), cov_qp
