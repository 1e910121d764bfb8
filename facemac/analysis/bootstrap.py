"""Bootstrap intervals that resample identities (independent draws when identities are unknown), from counts only.

Each replicate draws every dataset's clusters with replacement (a multinomial over its units, weighted by the draws
each unit stands for), rebuilds the per-attribute and joint counts as weighted sums, and recomputes every divergence.
Pooled pseudo-datasets are the sums of their members' replicates, so real(pooled) varies exactly as its parts do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy
from tqdm.auto import tqdm

from facemac.analysis.counts import DatasetCounts, sorted_unique



@dataclass
class Replicates:
    """Bootstrap replicates: ``n``/``positives`` [B, D, A]; ``joint_kl``/``coverage`` [B, D, D] (NaN on the diagonal)."""

    n: np.ndarray
    positives: np.ndarray
    joint_kl: np.ndarray
    coverage: np.ndarray


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


def bootstrap(counts: list[DatasetCounts], pooled: list[list[int]], alpha: float, n_boot: int, seed: int,
              joint: bool = True) -> Replicates:
    """Run ``n_boot`` replicates over ``counts`` (base datasets) and the ``pooled`` groups (lists of member indices).

    Each dataset's joint counts live on its own observed combinations (a replicate can only lose combinations), so
    memory follows the observed combinations, never 2^k, and each pair only touches the combinations both share.
    """
    base = len(counts)
    d_all = base + len(pooled)
    a = len(counts[0].n)
    supports = [c.joint_keys for c in counts]
    maps: list[list[np.ndarray]] = []
    for members in pooled:
        keys = sorted_unique(np.concatenate([supports[m] for m in members]))
        maps.append([np.searchsorted(keys, supports[m]) for m in members])
        supports.append(keys)
    pairs = [(i, j) for i in range(d_all) for j in range(i + 1, d_all)]
    shared = {}
    if joint:
        for i, j in pairs:
            _, ii, jj = np.intersect1d(supports[i], supports[j], assume_unique=True, return_indices=True)
            shared[(i, j)] = (ii, jj)
    tables = []
    for c in counts:
        u = c.units
        total = float(u.m.sum())
        local = np.searchsorted(c.joint_keys, u.joint_key)
        per_member = u.joint_count / u.m[u.joint_unit] if len(u.joint_unit) else u.joint_count
        tables.append((int(round(total)), u.m / total if total > 0 else u.m, u.m.astype(np.float32), u.n, u.s,
                       local, u.joint_unit, per_member))
    rngs = [np.random.default_rng([seed, i]) for i in range(base)]
    out = Replicates(n=np.zeros((n_boot, d_all, a)), positives=np.zeros((n_boot, d_all, a)),
                     joint_kl=np.full((n_boot, d_all, d_all), np.nan), coverage=np.full((n_boot, d_all, d_all), np.nan))
    chunk = 16
    with tqdm(total=n_boot, desc="bootstrap", unit="rep", leave=False) as bar:
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            draws = []
            for d, (total, prob, m, un, us, _, _, _) in enumerate(tables):
                w = rngs[d].multinomial(total, prob, size=stop - start).astype(np.float32) if total else None
                draws.append(w)
                if w is not None:
                    weight = w / m  # each unit's sums are over its m members; a draw takes one member's share
                    # einsum, not BLAS: multithreaded BLAS stalls for ~100 ms per call on an oversubscribed machine
                    out.n[start:stop, d] = np.einsum("ru,ua->ra", weight, un)
                    out.positives[start:stop, d] = np.einsum("ru,ua->ra", weight, us)
            for p, members in enumerate(pooled):
                out.n[start:stop, base + p] = out.n[start:stop, members].sum(1)
                out.positives[start:stop, base + p] = out.positives[start:stop, members].sum(1)
            if joint:
                for r in range(stop - start):
                    _joint_replicate(out, start + r, r, draws, tables, pooled, maps, supports, shared, base, alpha)
            bar.update(stop - start)
    return out


def _joint_replicate(out, rep, r, draws, tables, pooled, maps, supports, shared, base, alpha) -> None:
    """Joint KL and coverage of every ordered pair for one replicate."""
    local = []
    for d, (_, _, _, _, _, idx, junit, per_member) in enumerate(tables):
        w = draws[d]
        vec = np.bincount(idx, weights=w[r, junit] * per_member, minlength=len(supports[d])) if w is not None \
            else np.zeros(len(supports[d]))
        local.append(vec)
    for p, members in enumerate(pooled):
        vec = np.zeros(len(supports[base + p]))
        for m, where in zip(members, maps[p]):
            vec[where] += local[m]
        local.append(vec)
    sums = [_Support(v, alpha) for v in local]
    for (i, j), (ii, jj) in shared.items():
        kl_ij, cov_ij, kl_ji, cov_ji = fast_joint_kl(sums[i], sums[j], local[i][ii], local[j][jj], alpha)
        out.joint_kl[rep, i, j], out.coverage[rep, i, j] = kl_ij, cov_ij
        out.joint_kl[rep, j, i], out.coverage[rep, j, i] = kl_ji, cov_ji


def percentile_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along axis 0 (NaN replicates ignored)."""
    tail = (1.0 - level) / 2.0 * 100.0
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        return np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100.0 - tail, axis=0)


class _quiet_nan_warnings:
    """All-NaN slices (e.g. the diagonal) are expected; their interval is NaN."""

    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
