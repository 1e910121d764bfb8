"""Bootstrap intervals that resample identities (independent draws when identities are unknown), from counts only.

Each replicate draws every dataset's clusters with replacement (a multinomial over its units, weighted by the draws
each unit stands for), rebuilds the per-attribute and joint counts as weighted sums, and recomputes every divergence.
Pooled pseudo-datasets are the sums of their members' replicates, so real(pooled) varies exactly as its parts do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemac.analysis.arrays import pack_bits, unpack_bits
from facemac.analysis.counts import DatasetCounts
from facemac.analysis.joint import joint_layout, joint_matrix, with_pooled
from facemac.progress import progress_bar



@dataclass
class Replicates:
    """Bootstrap replicates: ``n``/``positives`` [B, D, A]; ``joint_kl``/``coverage``/``joint_js`` [B, D, D] (NaN on
    the diagonal)."""

    n: np.ndarray
    positives: np.ndarray
    joint_kl: np.ndarray
    coverage: np.ndarray
    joint_js: np.ndarray
    unit_weights: dict[int, np.ndarray] | None = None  # dataset -> [B, k] draw counts of the requested clusters


_SLICE = 131072  # pattern rows expanded to attribute bits at a time


def draw_counts(rng: np.random.Generator, weights: np.ndarray, reps: int) -> np.ndarray:
    """[reps, units] float32: how often each unit is drawn when sum(weights) draws are made with replacement, each
    unit in proportion to its weight (the draws it stands for). The one resampling step of every bootstrap here
    (datasets' clusters and patterns below, identities in analysis/identity.py)."""
    weights = np.asarray(weights, dtype=np.float64)
    return rng.multinomial(int(round(weights.sum())), weights / weights.sum(), size=reps).astype(np.float32)


def weighted_sums(w: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Resampled totals [reps, A] = draw counts [reps, units] @ per-unit values [units, A], in float64.

    einsum, not BLAS: multithreaded BLAS stalls for ~100 ms per call on an oversubscribed machine."""
    return np.einsum("ru,ua->ra", w, values, dtype=np.float64)


class _DrawTable:
    """One dataset's clusters and anonymous-image patterns, ready to be drawn with replacement."""

    def __init__(self, counts: DatasetCounts, joint_columns: np.ndarray):
        u = counts.units
        self.units = u
        self.num_attributes = len(counts.n)
        self.clusters = u.num_clusters
        self.total = u.draws
        self.weights = np.concatenate([np.ones(self.clusters), u.pattern_count])
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
        return draw_counts(rng, self.weights, reps) if self.total else None

    def attribute_counts(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resampled (n, positives) [reps, A]."""
        u, c = self.units, self.clusters
        n, s = weighted_sums(w[:, :c], u.n), weighted_sums(w[:, :c], u.s)
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


def bootstrap(counts: list[DatasetCounts], pooled: list[list[int]], alpha: float, n_boot: int, seed: int,
              joint_columns: np.ndarray | None = None, track_units: dict[int, np.ndarray] | None = None) -> Replicates:
    """Run ``n_boot`` replicates over ``counts`` (base datasets) and the ``pooled`` groups (lists of member indices).

    Each dataset's joint counts live on its own observed combinations (a replicate can only lose combinations), so
    memory follows the observed combinations, never 2^k, and each pair only touches the combinations both share.
    ``track_units`` {dataset: cluster indices} keeps those clusters' draw counts per replicate (``unit_weights``): an
    audited face then moves with its identity, so the audit correction and the count vary together.
    """
    base = len(counts)
    d_all = base + len(pooled)
    joint_columns = np.arange(len(counts[0].n)) if joint_columns is None else np.asarray(joint_columns, np.int64)
    joint = len(joint_columns) > 0
    a = len(counts[0].n)
    layout = joint_layout([c.joint_keys for c in counts], pooled) if joint else None
    tables = [_DrawTable(c, joint_columns) for c in counts]
    rngs = [np.random.default_rng([seed, i]) for i in range(base)]
    out = Replicates(n=np.zeros((n_boot, d_all, a)), positives=np.zeros((n_boot, d_all, a)),
                     joint_kl=np.full((n_boot, d_all, d_all), np.nan), coverage=np.full((n_boot, d_all, d_all), np.nan),
                     joint_js=np.full((n_boot, d_all, d_all), np.nan),
                     unit_weights={d: np.zeros((n_boot, len(u))) for d, u in (track_units or {}).items()})
    chunk = 16
    with progress_bar(total=n_boot, desc="bootstrap", unit="rep", leave=False) as bar:
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            draws = []
            for d, table in enumerate(tables):
                w = table.draw(rngs[d], stop - start)
                draws.append(w)
                if w is not None:
                    out.n[start:stop, d], out.positives[start:stop, d] = table.attribute_counts(w)
                    if d in out.unit_weights:
                        out.unit_weights[d][start:stop] = w[:, track_units[d]]
            for p, members in enumerate(pooled):
                out.n[start:stop, base + p] = out.n[start:stop, members].sum(1)
                out.positives[start:stop, base + p] = out.positives[start:stop, members].sum(1)
            if joint:
                for r in range(stop - start):
                    vectors = [t.joint_counts(w[r]) if w is not None else np.zeros(t.size)
                               for t, w in zip(tables, draws)]
                    out.joint_kl[start + r], out.coverage[start + r], out.joint_js[start + r] = joint_matrix(
                        layout, with_pooled(layout, vectors), alpha)
            bar.update(stop - start)
    return out


def percentile_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along axis 0 (NaN replicates ignored)."""
    tail = (1.0 - level) / 2.0 * 100.0
    samples = np.asarray(samples, dtype=np.float64)
    if not np.isnan(samples).any():  # nanpercentile loops over columns in Python: ~50x slower on wide tables
        low, high = np.percentile(samples, [tail, 100.0 - tail], axis=0)
        return low, high
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        return np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100.0 - tail, axis=0)


def centred_interval(samples: np.ndarray, estimate: np.ndarray, level: float,
                     bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected percentile interval: the replicates shifted by the bootstrap bias (mean − estimate), then the
    percentile interval, clipped to ``bounds``.

    Why: a plug-in divergence is biased upwards under resampling (a replicate adds noise, and noise only adds KL),
    worst for sparse joint distributions, so the plain percentile interval sits above its own estimate (the demo's
    joint KL missed it in 20 % of pairs). Shifting by the estimated bias centres the replicates on the estimate, so
    the interval contains it whenever the replicates' mean lies inside their central ``level`` range, and it also
    removes the first-order bias from the interval as an estimate of the population value."""
    samples = np.asarray(samples, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        shift = np.nanmean(samples, axis=0) - estimate
    lo, hi = percentile_interval(samples - shift, level)
    return np.clip(lo, *bounds), np.clip(hi, *bounds)


class _quiet_nan_warnings:
    """All-NaN slices (e.g. the diagonal) are expected; their interval is NaN."""

    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
