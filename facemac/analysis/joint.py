"""Joint KL between datasets stored sparsely: each (pseudo-)dataset holds counts on its own observed combinations,
and a pair only touches the combinations both share. Used for point estimates and every bootstrap replicate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy

from facemac.analysis.counts import sorted_unique


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


def joint_matrix(layout: JointLayout, vectors: list[np.ndarray], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """([D, D] KL(i || j), [D, D] coverage of i by j) for count vectors aligned with ``layout.supports``."""
    d = len(vectors)
    kl = np.full((d, d), np.nan)
    cov = np.full((d, d), np.nan)
    sums = [_Support(v, alpha) for v in vectors]
    for (i, j), (ii, jj) in layout.shared.items():
        kl[i, j], cov[i, j], kl[j, i], cov[j, i] = fast_joint_kl(sums[i], sums[j], vectors[i][ii], vectors[j][jj],
                                                                 alpha)
    return kl, cov


class _Support:
    """Joint counts of one (pseudo-)dataset on its own observed combinations, with the sums the KL needs."""

    def __init__(self, counts: np.ndarray, alpha: float):
        shifted = counts[counts > 0] + alpha
        logs = np.log(shifted)
        self.total = float(counts.sum())
        self.k = len(shifted)
        self.a = float((shifted * logs).sum())  # sum (c + alpha) log(c + alpha) over observed combinations
        self.l = float(logs.sum())  # sum log(c + alpha) over observed combinations


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
    x_pq = float((cp * np.log(cq + alpha)).sum())
    x_qp = float((cq * np.log(cp + alpha)).sum())

    def one_way(a: _Support, b: _Support, sa: float, x_ab: float) -> float:
        za, zb = a.total + alpha * k, b.total + alpha * k
        if za <= 0 or zb <= 0:
            return float("nan")
        self_term = (a.a + (k - a.k) * xlogy(alpha, alpha)) / za - np.log(za)
        cross = (xlogy(a.total - sa, alpha) + x_ab + alpha * b.l + (k - b.k) * xlogy(alpha, alpha)) / za - np.log(zb)
        return float(self_term - cross)

    cov_pq = sp / p.total if p.total > 0 else float("nan")
    cov_qp = sq / q.total if q.total > 0 else float("nan")
    return one_way(p, q, sp, x_pq), cov_pq, one_way(q, p, sq, x_qp), cov_qp
