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

from facemac.analysis.counts import DatasetCounts, pack_bits, sorted_unique, unpack_bits



@dataclass
class Replicates:
    """Bootstrap replicates: ``n``/``positives`` [B, D, A]; ``joint_kl``/``coverage`` [B, D, D] (NaN on the diagonal)."""

    n: np.ndarray
    positives: np.ndarray
    joint_kl: np.ndarray
    coverage: np.ndarray


_SLICE = 131072  # pattern rows expanded to attribute bits at a time


class _DrawTable:
    """One dataset's clusters and anonymous-image patterns, ready to be drawn with replacement."""

    def __init__(self, counts: DatasetCounts, joint_columns: np.ndarray):
        u = counts.units
        self.units = u
        self.num_attributes = len(counts.n)
        self.clusters = u.num_clusters
        self.total = u.draws
        weights = np.concatenate([np.ones(self.clusters), u.pattern_count])
        self.prob = weights / weights.sum() if self.total else weights
        self.size = len(counts.joint_keys)
        full = np.uint64((1 << self.num_attributes) - 1) if self.num_attributes < 64 else np.uint64(2**64 - 1)
        self.all_valid = bool((u.pattern_valid == full).all())  # annotations without masks: n = number of draws
        # joint entries as (local combination index, draw column, count per draw)
        idx = [np.searchsorted(counts.joint_keys, u.joint_key)]
        col = [u.joint_unit]
        cnt = [u.joint_count]
        if len(u.pattern_count) and len(joint_columns):
            labels = unpack_bits(u.pattern_labels, self.num_attributes)
            valid = unpack_bits(u.pattern_valid, self.num_attributes)
            cover = valid[:, joint_columns].all(1)
            keys = pack_bits(labels[cover][:, joint_columns])
            idx.append(np.searchsorted(counts.joint_keys, keys))
            col.append(self.clusters + np.flatnonzero(cover))
            cnt.append(np.ones(int(cover.sum())))
        self.j_idx = np.concatenate(idx)
        self.j_col = np.concatenate(col).astype(np.int64)
        self.j_cnt = np.concatenate(cnt)

    def draw(self, rng: np.random.Generator, reps: int) -> np.ndarray | None:
        """[reps, clusters + patterns] float32 draw counts (multinomial over ``total`` draws), None when empty."""
        if not self.total:
            return None
        return rng.multinomial(self.total, self.prob, size=reps).astype(np.float32)

    def attribute_counts(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resampled (n, positives) [reps, A]."""
        u, c = self.units, self.clusters
        # einsum, not BLAS: multithreaded BLAS stalls for ~100 ms per call on an oversubscribed machine
        n = np.einsum("ru,ua->ra", w[:, :c], u.n, dtype=np.float64)
        s = np.einsum("ru,ua->ra", w[:, :c], u.s, dtype=np.float64)
        for lo in range(0, len(u.pattern_count), _SLICE):
            hi = min(lo + _SLICE, len(u.pattern_count))
            wp = w[:, c + lo:c + hi]
            if self.all_valid:
                n += wp.sum(1, dtype=np.float64)[:, None]
            else:
                n += np.einsum("ru,ua->ra", wp, unpack_bits(u.pattern_valid[lo:hi], self.num_attributes).astype(np.float32))
            s += np.einsum("ru,ua->ra", wp, unpack_bits(u.pattern_labels[lo:hi], self.num_attributes).astype(np.float32))
        return n, s

    def joint_counts(self, w_row: np.ndarray) -> np.ndarray:
        """Resampled joint counts on this dataset's observed combinations."""
        return np.bincount(self.j_idx, weights=w_row[self.j_col] * self.j_cnt, minlength=self.size)


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
              joint_columns: np.ndarray | None = None) -> Replicates:
    """Run ``n_boot`` replicates over ``counts`` (base datasets) and the ``pooled`` groups (lists of member indices).

    Each dataset's joint counts live on its own observed combinations (a replicate can only lose combinations), so
    memory follows the observed combinations, never 2^k, and each pair only touches the combinations both share.
    """
    base = len(counts)
    d_all = base + len(pooled)
    joint_columns = np.arange(len(counts[0].n)) if joint_columns is None else np.asarray(joint_columns, np.int64)
    joint = len(joint_columns) > 0
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
    tables = [_DrawTable(c, joint_columns) for c in counts]
    rngs = [np.random.default_rng([seed, i]) for i in range(base)]
    out = Replicates(n=np.zeros((n_boot, d_all, a)), positives=np.zeros((n_boot, d_all, a)),
                     joint_kl=np.full((n_boot, d_all, d_all), np.nan), coverage=np.full((n_boot, d_all, d_all), np.nan))
    chunk = 16
    with tqdm(total=n_boot, desc="bootstrap", unit="rep", leave=False) as bar:
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            draws = []
            for d, table in enumerate(tables):
                w = table.draw(rngs[d], stop - start)
                draws.append(w)
                if w is not None:
                    out.n[start:stop, d], out.positives[start:stop, d] = table.attribute_counts(w)
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
    for d, table in enumerate(tables):
        w = draws[d]
        local.append(table.joint_counts(w[r]) if w is not None else np.zeros(len(supports[d])))
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
