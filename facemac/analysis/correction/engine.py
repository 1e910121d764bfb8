"""The correction engine: per dataset and attribute the rate estimate with the correction it got (``audit``,
``validation`` or ``none``), point-wise and per bootstrap replicate, so every interval resamples what the estimate
depends on (the target's identities in analysis/bootstrap.py; the audited faces with their identities, or within
their strata, and the validation identities here, each correction with its own seeded stream). Reported rates are in
[0, 1] (boundary rule: the posterior mean under a flat prior); intervals and the divergences' replicates come from the
unconstrained replicates clipped to [0, 1].

A correction maps counted rates to corrected ones; divergences then use corrected positives = rate·n in the
alpha-smoothed Bernoulli (analysis/divergence.py), so the smoothing is the same as for counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.stats import norm

from facemac.analysis.correction.audit import AuditRows, audit_estimate, audit_variance, replicate_weights
from facemac.analysis.rates import wilson_interval

NONE = "none"
AUDIT = "audit"
VALIDATION = "validation"


class Correction(Protocol):
    """What the engine needs of a correction (audit here, validation in correction/validation.py)."""

    name: str

    def point(self, counted: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Corrected rates [A] from counted rates [A] over ``n`` rows."""

    def replicates(self, counted: np.ndarray, n: np.ndarray, rng: np.random.Generator,
                   identity_weights: np.ndarray | None = None, counted_point: np.ndarray | None = None) -> np.ndarray:
        """Corrected rates [B, A] from the identity-bootstrap replicates of the counted rates [B, A], resampling the
        correction's own evidence (audit rows, validation identities) once per replicate; ``identity_weights``: the
        draw counts of the faces in ``clusters`` in the same replicates (None when not asked for); ``counted_point``:
        the counted rate of the sample itself."""

    def clusters(self, identity_units: dict[str, int] | None) -> np.ndarray | None:
        """Cluster index (-1: none) of each face whose draw counts ``replicates`` wants, or None."""

    def variance(self, counted: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Variance of the corrected rate [A] (normal intervals when the bootstrap is off)."""

    def assumption(self, dataset: str) -> str:
        """What the estimate assumes, in words, for the report."""


@dataclass
class AuditCorrection:
    """Prediction-powered: θ̂ = λ·counted rate + design-weighted mean(audited − λ·MAC) (correction/audit.py), λ the
    regression estimator's weight (``tune``; λ = 1: plain PPI, counted + mean disagreement), re-estimated in every
    replicate."""

    rows: AuditRows
    tune: bool = True
    name: str = AUDIT
    lam: np.ndarray | None = None  # [A] the sample's λ (reported)
    spread: np.ndarray | None = None  # [A] sd of the unconstrained replicates
    raw_point: np.ndarray | None = None  # [A] the unconstrained estimate (may leave [0, 1])
    raw_replicates: np.ndarray | None = None  # [B, A] unconstrained replicates (the interval's percentiles)

    def point(self, counted, n):
        """The posterior mean of the rate under a flat prior on [0, 1] with a normal likelihood around the
        unconstrained estimate (spread: the bootstrap's, else the analytic one): a rare attribute whose audit finds
        fewer positives than the MAC counted gets a small positive rate, never a 0 that makes every KL against it
        explode (the boundary rule of correction/validation.py's ``*_bayes`` methods)."""
        from facemac.analysis.correction.validation import posterior_mean

        est, lam = audit_estimate(self.rows, np.ones((1, self.rows.size)), counted[None], n[None], self.tune)
        self.lam, self.raw_point = lam[0], est[0]
        s = self.spread if self.spread is not None else np.sqrt(np.clip(self.variance(counted, n), 0, None))
        return posterior_mean(est[0], s)

    def replicates(self, counted, n, rng, identity_weights=None, counted_point=None):
        from facemac.analysis.correction.validation import posterior_mean

        w = replicate_weights(self.rows, rng, counted.shape[0], identity_weights)
        raw = audit_estimate(self.rows, w, counted, n, self.tune)[0]
        with np.errstate(invalid="ignore"):
            self.spread = np.nanstd(raw, axis=0, ddof=1) if raw.shape[0] >= 2 else np.zeros(raw.shape[1:])
        self.raw_replicates = raw
        return posterior_mean(raw, self.spread[None])

    def clusters(self, identity_units):
        """Audited faces -> the target's identity clusters (their draws are shared with the count's bootstrap)."""
        if not identity_units or self.rows.identities is None:
            return None
        units = np.array([identity_units.get(i, -1) if i is not None else -1 for i in self.rows.identities], np.int64)
        return units if (units >= 0).any() else None

    def variance(self, counted, n):
        return audit_variance(self.rows, counted, n, self.tune)

    def assumption(self, dataset):
        return (f"{self.rows.size} audited faces of {dataset} ({self.rows.design} sample; valid whatever the shift "
                "from the MAC's training domain)")

    def judged(self) -> np.ndarray:
        return self.rows.judged_per_attribute()


def shared_clusters(corrections: list[Correction | None], counts) -> dict[int, np.ndarray]:
    """{dataset: cluster index per face (-1: none)} for the corrections whose evidence moves with the target's
    identities (audited faces of named identities)."""
    out = {}
    for d, c in enumerate(corrections):
        units = counts[d].units
        got = c.clusters(units.identity_units) if c is not None and units is not None else None
        if got is not None:
            out[d] = got
    return out


def face_weights(units: dict[int, np.ndarray], drawn: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """[B, faces] draw counts from the tracked clusters' draws (``bootstrap(track_units=…)``); NaN for faces without
    a cluster."""
    out = {}
    for d, u in units.items():
        w = np.full((drawn[d].shape[0], len(u)), np.nan)
        w[:, u >= 0] = drawn[d]
        out[d] = w
    return out


@dataclass
class ValidationCorrection:
    """Without an audit: the checkpoint's validation errors (correction/validation.py, its default method and its
    assumption check). Each replicate draws the validation identities (``draw_counts``) next to the target's; the
    target's mean probability and UNCERTAIN share per replicate (the check's moments) come from the streamed row sums
    (``moment_replicates``: conditioned on the replicate's counted rate, scaled by the identity bootstrap's inflation;
    probabilities are not kept per identity). Where the check fails the counted rate stands."""

    vs: object  # ValidationSet restricted to the analysed attributes
    moments: object  # RowMoments of the target (analysis/counts.py)
    method: str
    point_value: np.ndarray | None = None
    applied: np.ndarray | None = None  # [A] where the correction was used (the check passed)
    raw_replicates: np.ndarray | None = None  # [B, A] unconstrained replicates (the interval's percentiles)
    consistent: bool = True
    internal_draws: int = 200
    shared_seed: int = 0  # validation draws from default_rng([shared_seed, 11]): one draw for every dataset this MAC
    # annotated (the same confusion rates correct them all, so their KL does not vary by the validation split twice)

    @property
    def name(self) -> str:
        """``validation``, or ``none`` when the assumption check failed for the dataset (counted rates kept)."""
        return VALIDATION if self.consistent else NONE

    def _run(self, counted_b, n_b, rng, counted):
        from facemac.analysis.bootstrap import draw_counts
        from facemac.analysis.correction.validation import (TargetSummary, confusion_stats, correct,
                                                            moment_replicates)

        b = counted_b.shape[0]
        shared = np.random.default_rng([self.shared_seed, 11])
        stats_b = confusion_stats(self.vs, draw_counts(shared, self.vs.identity_weights, b))
        mean_b, unc_b = moment_replicates(counted_b, self.moments, rng)
        n = np.maximum(self.moments.n, 1.0)
        target = TargetSummary(rate=counted_b, mean_prob=mean_b, uncertain=unc_b)
        point = TargetSummary(rate=counted[None], mean_prob=(self.moments.p / n)[None],
                              uncertain=(self.moments.u / n)[None])
        out = correct(target, stats_b, self.method, point=point, point_stats=confusion_stats(self.vs))
        self.point_value = out.point
        self.raw_replicates = out.raw
        self.applied = out.check.applied if out.check is not None else np.ones_like(counted, bool)
        self.consistent = bool(np.all(out.check.consistent)) if out.check is not None else True
        return out.replicates

    def point(self, counted, n):
        if self.point_value is None:  # no bootstrap: the validation draws alone give the spread
            reps = np.repeat(counted[None], self.internal_draws, 0)
            self._run(reps, np.repeat(n[None], self.internal_draws, 0), np.random.default_rng(0), counted)
        return self.point_value

    def replicates(self, counted, n, rng, identity_weights=None, counted_point=None):
        return self._run(counted, n, rng, counted_point if counted_point is not None else np.nanmean(counted, 0))

    def clusters(self, identity_units):
        return None

    def variance(self, counted, n):
        reps = np.repeat(counted[None], self.internal_draws, 0)
        r = self._run(reps, np.repeat(n[None], self.internal_draws, 0), np.random.default_rng(0), counted)
        with np.errstate(invalid="ignore", divide="ignore"):
            return counted * (1 - counted) / n + np.nanvar(r, 0)

    def assumption(self, dataset):
        if not self.consistent:
            return (f"none applied: {dataset}'s probabilities do not look like a rate shift of the validation split "
                    "(the MAC errs on it unlike on validation); counted rates kept — an audit would correct them")
        kept = int((~self.applied).sum()) if self.applied is not None else 0
        return (f"assumes the MAC errs on {dataset} as on its validation split ({self.vs.num_identities} validation "
                f"identities, resampled){f'; {kept} attributes failed the check and keep their counted rate' if kept else ''}")


def validation_correction(d, attributes: list[str], counts, label_rule: str,
                          seed: int = 0) -> ValidationCorrection | None:
    """The no-audit correction of one annotated input, or None (no validation predictions: an older checkpoint)."""
    from facemac.analysis.correction.validation import DEFAULT_METHOD, load_validation

    vs = load_validation(d.path, label_rule)
    if vs is None or counts.row_moments is None:
        return None
    return ValidationCorrection(vs.select(attributes), counts.row_moments, DEFAULT_METHOD, shared_seed=seed)


@dataclass
class CorrectedRates:
    """Rates of every (pseudo-)dataset [D_all, A]: ``rate`` corrected (in [0, 1]), ``counted`` the MAC's counts,
    ``low``/``high`` the interval of the corrected rate, ``replicates`` [B, D_all, A] (None without bootstrap; the
    unconstrained replicates clipped to [0, 1]),
    ``method`` per dataset (pooled: the members' methods joined with '+', when they differ)."""

    n: np.ndarray
    rate: np.ndarray
    counted: np.ndarray
    low: np.ndarray
    high: np.ndarray
    replicates: np.ndarray | None
    method: list[str]

    @property
    def positives(self) -> np.ndarray:
        """Corrected positives = rate·n (what the smoothed Bernoulli of the divergences takes)."""
        return self.rate * self.n


def _rate(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, pos / np.where(n > 0, n, 1.0), np.nan)


def _pool(values: np.ndarray, n: np.ndarray, pooled: list[list[int]], axis_d: int) -> np.ndarray:
    """Append the pooled groups' rates (n-weighted means of their members' rates) along the dataset axis."""
    if not pooled:
        return values
    v = np.moveaxis(values, axis_d, 0)
    w = np.moveaxis(n, axis_d, 0)
    extra = [np.nansum(v[m] * w[m], 0) / np.maximum(w[m].sum(0), 1e-300) for m in pooled]
    return np.moveaxis(np.concatenate([v, np.stack(extra)]), 0, axis_d)


def correct_rates(n: np.ndarray, positives: np.ndarray, corrections: list[Correction | None],
                  pooled: list[list[int]], level: float, seed: int, rep_n: np.ndarray | None = None,
                  rep_positives: np.ndarray | None = None,
                  identity_weights: dict[int, np.ndarray] | None = None) -> CorrectedRates:
    """Corrected rates of the base datasets ``n``/``positives`` [D, A] and of the pooled groups, with intervals.

    ``rep_n``/``rep_positives`` [B, D, A] are the identity-bootstrap replicates of the base datasets (analysis/
    bootstrap.py); the corrected replicates resample each correction's evidence with ``default_rng([seed, 7, d])``,
    ``identity_weights`` {d: [B, faces]} the draw counts of the faces a correction asked for (``clusters``).
    A dataset without correction keeps its Wilson interval (as before); a corrected one gets the percentile interval
    of its replicates, or a normal interval from ``variance`` without bootstrap.
    """
    counted = _rate(positives, n)
    rb = raw = None
    if rep_n is not None and rep_positives is not None:  # replicates first: a correction may derive its point there
        rb = _rate(rep_positives, rep_n)
        raw = rb.copy()
        for d, c in enumerate(corrections):
            if c is not None:
                rb[:, d] = c.replicates(rb[:, d], rep_n[:, d], np.random.default_rng([seed, 7, d]),
                                        (identity_weights or {}).get(d), counted[d])
                unconstrained = getattr(c, "raw_replicates", None)
                raw[:, d] = rb[:, d] if unconstrained is None else unconstrained
    point = counted.copy()
    for d, c in enumerate(corrections):
        if c is not None:
            point[d] = c.point(counted[d], n[d])
    point = np.clip(point, 0.0, 1.0)
    n_all = np.concatenate([n] + [n[m].sum(0, keepdims=True) for m in pooled]) if pooled else n
    rate = _pool(point, n, pooled, 0)
    counted_all = _pool(counted, n, pooled, 0)
    methods = [c.name if c is not None else NONE for c in corrections]
    methods += ["+".join(dict.fromkeys(methods[i] for i in m)) for m in pooled]
    # replicates feed the divergences' intervals: the unconstrained ones clipped to [0, 1], as the rate intervals,
    # so the boundary's mass is in them (the posterior mean is a rule for the point only; with the posterior means
    # the demo's rare synthetic rates got too narrow KL intervals: population coverage 0.918 instead of 0.958)
    reps = None if rb is None else _pool(np.clip(raw, 0.0, 1.0), rep_n, pooled, 1)
    wl, wh = wilson_interval(counted_all * n_all, n_all, level)
    low, high = wl.copy(), wh.copy()
    corrected = np.array([m != NONE for m in methods])
    if corrected.any():
        if reps is not None:  # percentiles of the unconstrained replicates, clipped: they reach 0 when data allow it
            tail = (1.0 - level) / 2.0 * 100.0
            with np.errstate(invalid="ignore"):
                lo, hi = np.nanpercentile(_pool(np.clip(raw, 0.0, 1.0), rep_n, pooled, 1), [tail, 100.0 - tail],
                                          axis=0)
            lo, hi = np.minimum(lo, rate), np.maximum(hi, rate)
        else:
            var = np.zeros_like(point)
            for d, c in enumerate(corrections):
                with np.errstate(invalid="ignore", divide="ignore"):
                    var[d] = c.variance(counted[d], n[d]) if c is not None else counted[d] * (1 - counted[d]) / n[d]
            if pooled:
                share = [n[m] / np.maximum(n[m].sum(0), 1e-300) for m in pooled]
                var = np.concatenate([var] + [(s ** 2 * var[m]).sum(0, keepdims=True) for s, m in zip(share, pooled)])
            z = norm.ppf(0.5 + level / 2.0)
            half = z * np.sqrt(np.clip(var, 0.0, None))
            centre = point.copy()  # around the unconstrained estimate (ppi-python's interval)
            for d, c in enumerate(corrections):
                if getattr(c, "raw_point", None) is not None:
                    centre[d] = c.raw_point
            centre = _pool(centre, n, pooled, 0)
            lo, hi = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
        low[corrected], high[corrected] = lo[corrected], hi[corrected]
    return CorrectedRates(n=n_all, rate=rate, counted=counted_all, low=low, high=high, replicates=reps,
                          method=methods)
