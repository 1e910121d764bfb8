"""Bootstrap intervals that resample identities (independent draws when identities are unknown), from counts only.

Each replicate draws every dataset's clusters with replacement (a multinomial over its units, weighted by the draws
each unit stands for), rebuilds the per-attribute and joint counts as weighted sums, and recomputes every divergence.
Pooled pseudo-datasets are the sums of their members' replicates, so real(pooled) varies exactly as its parts do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from facemac.analysis.counts import DatasetCounts
from facemac.analysis.divergence import joint_kl

_JOINT_CHUNK_BYTES = 256 * 1024 * 1024  # replicate chunk size is chosen so the joint counts stay under this


@dataclass
class Replicates:
    """Bootstrap replicates: ``n``/``positives`` [B, D, A]; ``joint_kl``/``coverage`` [B, D, D] (NaN on the diagonal)."""

    n: np.ndarray
    positives: np.ndarray
    joint_kl: np.ndarray
    coverage: np.ndarray


def _unit_tables(counts: DatasetCounts, combo_keys: np.ndarray):
    """Per dataset: (draws M, probabilities, n, s, joint combo index, joint unit, joint count per member)."""
    u = counts.units
    total = float(u.m.sum())
    prob = u.m / total if total > 0 else u.m
    jidx = np.searchsorted(combo_keys, u.joint_key) if len(combo_keys) else np.zeros(0, np.int64)
    jper = u.joint_count / u.m[u.joint_unit] if len(u.joint_unit) else u.joint_count
    return int(round(total)), prob, u.m.astype(np.float32), u.n, u.s, jidx, u.joint_unit, jper


def bootstrap(counts: list[DatasetCounts], pooled: list[list[int]], combo_keys: np.ndarray,
              joint_counts: np.ndarray, alpha: float, n_boot: int, seed: int) -> Replicates:
    """Run ``n_boot`` replicates; ``joint_counts`` [D_all, K] are the point-estimate counts (they fix each pair's
    union of observed combinations, outside which every replicate is zero)."""
    base = len(counts)
    d_all = base + len(pooled)
    a = len(counts[0].n)
    k = len(combo_keys)
    tables = [_unit_tables(c, combo_keys) for c in counts]
    rngs = [np.random.default_rng([seed, i]) for i in range(base)]
    pairs = [(i, j) for i in range(d_all) for j in range(i + 1, d_all)]
    supports = {(i, j): np.flatnonzero((joint_counts[i] > 0) | (joint_counts[j] > 0)) for i, j in pairs} if k else {}
    out = Replicates(n=np.zeros((n_boot, d_all, a)), positives=np.zeros((n_boot, d_all, a)),
                     joint_kl=np.full((n_boot, d_all, d_all), np.nan), coverage=np.full((n_boot, d_all, d_all), np.nan))
    chunk = int(max(1, min(32, _JOINT_CHUNK_BYTES // max(1, d_all * k * 8))))
    with tqdm(total=n_boot, desc="bootstrap", unit="rep", leave=False) as bar:
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            reps = stop - start
            jc = np.zeros((reps, d_all, k)) if k else None
            for d, (total, prob, m, un, us, jidx, junit, jper) in enumerate(tables):
                if total == 0:
                    continue
                draws = rngs[d].multinomial(total, prob, size=reps).astype(np.float32)
                weight = draws / m  # each unit's sums are over its m members; a draw takes one member's share
                out.n[start:stop, d] = weight @ un
                out.positives[start:stop, d] = weight @ us
                if k:
                    for r in range(reps):
                        jc[r, d] = np.bincount(jidx, weights=draws[r, junit] * jper, minlength=k)
            for p, members in enumerate(pooled):
                out.n[start:stop, base + p] = out.n[start:stop, members].sum(1)
                out.positives[start:stop, base + p] = out.positives[start:stop, members].sum(1)
                if k:
                    jc[:, base + p] = jc[:, members].sum(1)
            if k:
                for r in range(reps):
                    for i, j in pairs:
                        idx = supports[(i, j)]
                        cp, cq = jc[r, i, idx], jc[r, j, idx]
                        out.joint_kl[start + r, i, j], out.coverage[start + r, i, j] = joint_kl(cp, cq, alpha)
                        out.joint_kl[start + r, j, i], out.coverage[start + r, j, i] = joint_kl(cq, cp, alpha)
            bar.update(reps)
    return out


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
