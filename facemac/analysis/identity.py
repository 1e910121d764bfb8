"""Within-identity statistics: does an identity keep its identity-level attributes, and do its images vary the
image-level ones? Computed from per-identity label counts kept while streaming (memory follows identities, never
images), with intervals from resampling identities.

For an identity with n >= ``min_images`` labelled images of an attribute, k of them positive, its rate is r = k / n.
It is *mixed* when 0 < r < 1, its label entropy is H(r) in bits (0: all images agree, 1: half and half), and its rate
falls in one of five categories (none / few / half / most / all of its images). Per dataset and attribute the table
holds the share of mixed identities, the mean entropy and the category shares; pooled groups hold their members'
identities together. Pairs of datasets are compared by the difference in mixed share and by the Jensen–Shannon
divergence between their category distributions (docs/analyze.md says why this one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facemac.analysis.bootstrap import draw_counts, percentile_interval, weighted_sums
from facemac.analysis.counts import CountAccumulator, DatasetCounts, PerIdentity
from facemac.analysis.divergence import jensen_shannon
from facemac.analysis.readers import Batch
from facemac.attributes import attribute_levels
from facemac.settings.analyze import IdentitySettings

log = logging.getLogger(__name__)

# Per-identity rate categories: r = 0, 0 < r < 1/3, 1/3 <= r <= 2/3, 2/3 < r < 1, r = 1; the middle three are mixed.
CATEGORIES = ("none", "few", "half", "most", "all")
STATS_COLUMNS = ["dataset", "group", "attribute", "level", "identities", "images", "mixed_share", "mean_entropy",
                 "ci_low", "ci_high", "entropy_ci_low", "entropy_ci_high", *(f"share_{c}" for c in CATEGORIES)]
COMPARE_COLUMNS = ["p", "q", "group_p", "group_q", "attribute", "level", "mixed_share_p", "mixed_share_q",
                   "mixed_share_q_minus_p", "mixed_ci_low", "mixed_ci_high", "mean_entropy_p", "mean_entropy_q",
                   "entropy_q_minus_p", "entropy_ci_low", "entropy_ci_high", "js_identity_rates", "js_ci_low",
                   "js_ci_high"]
_CHUNK = 16  # bootstrap replicates drawn at a time


class IdentityCounter:
    """Per-identity hard-label counts, fed the batches the dataset's CountAccumulator gets.

    In hard mode with the bootstrap on (<= 64 attributes), that accumulator's units already are exactly these counts
    (anonymous rows go to patterns there), so they are taken from it and nothing is counted twice; otherwise a second,
    hard-mode accumulator sees the rows with a known identity only.
    """

    def __init__(self, main: CountAccumulator):
        self.shared = not main.soft and main.track_units and len(main.thresholds) <= 64
        self._acc = None if self.shared else CountAccumulator(main.thresholds, np.zeros(0, np.int64), soft=False,
                                                              track_units=True)

    def add(self, batch: Batch) -> None:
        """Count the rows of ``batch`` that name an identity."""
        if self._acc is None:
            return
        known = batch.identity_codes >= 0
        if known.all():
            self._acc.add(batch)
        elif known.any():
            self._acc.add(Batch(batch.values[known], batch.valid[known], batch.identity_codes[known],
                                batch.identity_names, batch.dropped))

    def result(self, counts: DatasetCounts) -> PerIdentity | None:
        """The per-identity counts (None when no row named an identity)."""
        units = counts.units if self.shared else self._acc.result().units
        if units is None or units.num_identities == 0:
            return None
        return PerIdentity(n=units.n, s=units.s)


def binary_entropy_bits(rate: np.ndarray) -> np.ndarray:
    """H(r) in bits, 0 at r in {0, 1}."""
    r = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(r * np.log2(r) + (1 - r) * np.log2(1 - r))
    return np.where((r > 0) & (r < 1), h, 0.0)


def rate_category(rate: np.ndarray) -> np.ndarray:
    """Index into CATEGORIES of each per-identity rate."""
    r = np.asarray(rate, dtype=np.float64)
    return np.select([r <= 0, r < 1 / 3, r <= 2 / 3, r < 1], [0, 1, 2, 3], default=4)


@dataclass
class Summary:
    """One (pseudo-)dataset: identities per category ``hist`` [A, 5], summed entropies ``entropy`` [A], images of
    the counted identities ``images`` [A], and the same per bootstrap replicate (``reps_*``, None without it)."""

    hist: np.ndarray
    entropy: np.ndarray
    images: np.ndarray
    reps_hist: np.ndarray | None
    reps_entropy: np.ndarray | None

    @staticmethod
    def pooled(parts: list[Summary]) -> Summary:
        """Members' identities together; members are resampled independently, so replicates add up too."""
        reps = parts[0].reps_hist is not None
        return Summary(hist=sum(p.hist for p in parts), entropy=sum(p.entropy for p in parts),
                       images=sum(p.images for p in parts),
                       reps_hist=sum(p.reps_hist for p in parts) if reps else None,
                       reps_entropy=sum(p.reps_entropy for p in parts) if reps else None)


def summarise(counts: PerIdentity, min_images: int, n_boot: int, rng: np.random.Generator) -> Summary | None:
    """Category counts and entropy sums over the identities with >= ``min_images`` labels; replicates draw those
    identities with replacement. None when no identity has enough images."""
    eligible = counts.n >= min_images
    keep = eligible.any(1)
    if not keep.any():
        return None
    n, s, eligible = counts.n[keep].astype(np.float64), counts.s[keep].astype(np.float64), eligible[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(eligible, s / n, 0.0)
    cat = np.where(eligible, rate_category(rate), -1)
    onehot = [(cat == k).astype(np.float32) for k in range(len(CATEGORIES))]
    ent = np.where(eligible, binary_entropy_bits(rate), 0.0).astype(np.float32)
    out = Summary(hist=np.stack([o.sum(0, dtype=np.float64) for o in onehot], -1), entropy=ent.sum(0, dtype=np.float64),
                  images=np.where(eligible, n, 0).sum(0), reps_hist=None, reps_entropy=None)
    if n_boot > 0:
        identities = np.ones(len(n))  # each identity is one draw
        out.reps_hist = np.zeros((n_boot, n.shape[1], len(CATEGORIES)))
        out.reps_entropy = np.zeros((n_boot, n.shape[1]))
        for lo in range(0, n_boot, _CHUNK):
            hi = min(n_boot, lo + _CHUNK)
            w = draw_counts(rng, identities, hi - lo)
            for k, o in enumerate(onehot):
                out.reps_hist[lo:hi, :, k] = weighted_sums(w, o)
            out.reps_entropy[lo:hi] = weighted_sums(w, ent)
    return out


def _ratios(hist: np.ndarray, entropy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mixed share, mean entropy, category shares) from counts [..., A, 5] and entropy sums [..., A]."""
    total = hist.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return hist[..., 1:4].sum(-1) / total, entropy / total, hist / total[..., None]


@dataclass
class IdentityTables:
    """identity_stats.csv and identity_compare.csv as DataFrames, and the datasets left out with the reason."""

    stats: pd.DataFrame
    compare: pd.DataFrame
    skipped: dict[str, str]
    levels: dict[str, str]


def identity_tables(names: list[str], groups: list[str], attributes: list[str], per_identity: list[PerIdentity | None],
                    pooled: list[list[int]], focus: list[tuple[str, str]], settings: IdentitySettings, n_boot: int,
                    level: float, seed: int) -> IdentityTables:
    """Statistics of every base dataset (``per_identity``, in ``names`` order) and pooled group with identities, and
    the comparison of every ``focus`` pair that both have them."""
    levels = attribute_levels(attributes, dict(settings.levels or {}))
    base = len(per_identity)
    summaries: dict[str, Summary] = {}
    skipped: dict[str, str] = {}
    for i, counts in enumerate(per_identity):
        got = None if counts is None else summarise(counts, settings.min_images, n_boot,
                                                    np.random.default_rng([seed, 0x1D, i]))
        if got is None:
            skipped[names[i]] = ("no identities" if counts is None
                                 else f"no identity with >= {settings.min_images} images")
        else:
            summaries[names[i]] = got
    for p, members in enumerate(pooled):
        parts = [summaries[names[m]] for m in members if names[m] in summaries]
        if parts:
            summaries[names[base + p]] = Summary.pooled(parts)
        else:
            skipped[names[base + p]] = "no member has identities"
    for name, why in skipped.items():
        log.info("identity statistics: %s skipped (%s)", name, why)
    group = dict(zip(names, groups))
    stats = pd.DataFrame([row for name, summ in summaries.items()
                          for row in _stat_rows(name, group[name], attributes, levels, summ, level)],
                         columns=STATS_COLUMNS)
    compare = pd.DataFrame([row for p, q in focus if p in summaries and q in summaries
                            for row in _compare_rows(p, q, group, attributes, levels, summaries[p], summaries[q],
                                                     level)], columns=COMPARE_COLUMNS)
    return IdentityTables(stats=stats, compare=compare, skipped=skipped, levels=levels)


def _stat_rows(name: str, group: str, attributes: list[str], levels: dict[str, str], summ: Summary,
               level: float) -> list[dict]:
    mixed, entropy, shares = _ratios(summ.hist, summ.entropy)
    nan = np.full(len(attributes), np.nan)
    lo = hi = elo = ehi = nan
    if summ.reps_hist is not None:
        r_mixed, r_entropy, _ = _ratios(summ.reps_hist, summ.reps_entropy)
        lo, hi = percentile_interval(r_mixed, level)
        elo, ehi = percentile_interval(r_entropy, level)
    return [{"dataset": name, "group": group, "attribute": a, "level": levels[a],
             "identities": int(summ.hist[j].sum()), "images": int(summ.images[j]), "mixed_share": mixed[j],
             "mean_entropy": entropy[j], "ci_low": lo[j], "ci_high": hi[j], "entropy_ci_low": elo[j],
             "entropy_ci_high": ehi[j], **{f"share_{c}": shares[j, k] for k, c in enumerate(CATEGORIES)}}
            for j, a in enumerate(attributes)]


def _compare_rows(p: str, q: str, group: dict[str, str], attributes: list[str], levels: dict[str, str],
                  sp: Summary, sq: Summary, level: float) -> list[dict]:
    mp, ep, dp = _ratios(sp.hist, sp.entropy)
    mq, eq, dq = _ratios(sq.hist, sq.entropy)
    js = jensen_shannon(dp, dq)
    nan = np.full(len(attributes), np.nan)
    intervals = {k: (nan, nan) for k in ("mixed", "entropy", "js")}
    if sp.reps_hist is not None and sq.reps_hist is not None:
        rmp, rep, rdp = _ratios(sp.reps_hist, sp.reps_entropy)
        rmq, req, rdq = _ratios(sq.reps_hist, sq.reps_entropy)
        intervals = {"mixed": percentile_interval(rmq - rmp, level), "entropy": percentile_interval(req - rep, level),
                     "js": percentile_interval(jensen_shannon(rdp, rdq), level)}
    return [{"p": p, "q": q, "group_p": group[p], "group_q": group[q], "attribute": a, "level": levels[a],
             "mixed_share_p": mp[j], "mixed_share_q": mq[j], "mixed_share_q_minus_p": mq[j] - mp[j],
             "mixed_ci_low": intervals["mixed"][0][j], "mixed_ci_high": intervals["mixed"][1][j],
             "mean_entropy_p": ep[j], "mean_entropy_q": eq[j], "entropy_q_minus_p": eq[j] - ep[j],
             "entropy_ci_low": intervals["entropy"][0][j], "entropy_ci_high": intervals["entropy"][1][j],
             "js_identity_rates": js[j], "js_ci_low": intervals["js"][0][j], "js_ci_high": intervals["js"][1][j]}
            for j, a in enumerate(attributes)]
