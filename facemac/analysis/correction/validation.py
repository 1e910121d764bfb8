"""Correcting counted rates without an audit, from what the checkpoint knows about the MAC's errors.

The MAC's validation split (rows the MAC never trained on, with true labels) travels with every annotation table as
``validation.parquet`` (facemac/annotation_table.py). From it come, per attribute, the true- and false-positive rates
of the hard labels the analysis counts (and the mean probabilities of positives and negatives, for PACC). A target's
counted rate ``q`` then becomes an estimate of its true rate ``pi`` under one assumption: **the MAC errs on the target
as on its validation split** (same tpr/fpr; exact for the MAC's own domain, not under domain shift, where only an
audit helps). Rogan–Gladen / ACC inverts ``q = fpr + pi (tpr - fpr)``.

Uncertainty: the bootstrap resamples the validation identities together with the target's, so every replicate has its
own tpr/fpr (``confusion_stats`` with ``identity_draws``) and its own corrected rate. The boundary is handled, not
clipped away: the unconstrained estimate of a rare attribute can fall below 0, and a rate clipped to 0 makes every KL
against it explode (the naive Rogan–Gladen failure of issue #20). The ``*_bayes`` methods report the mean of the
estimate's posterior under a flat prior on [0, 1] (a normal likelihood around the unconstrained estimate whose spread
is the bootstrap's: target and validation sampling both), so a rare attribute gets a small positive rate, and its
interval (``Corrected.interval``) is the percentile interval of the unconstrained replicates clipped to [0, 1], which
reaches 0 when the data allow 0.

The assumption is checked, not only stated: if the MAC errs on the target as on validation, the target's
probabilities are a mixture of the validation positives' and negatives' probabilities with weight ``pi``, so the mean
probability and the share of rows in the UNCERTAIN band are predicted by the corrected rate. ``shift_check`` compares
them (z against the bootstrap's spread of the gap); an attribute with |z| > Z_CRIT keeps its counted rate, and a
dataset where more than MAX_FAILED_SHARE of the attributes fail keeps all of them (the demo's synthetic-like targets,
which the MACs classify better than their validation split, all fail; the real-like ones all pass). The outputs must
say which rates were corrected and that the correction assumes validation-like errors.

Shapes (B replicates, I validation identities, N validation rows, A attributes; optional D datasets):
  identity_draws   float [B, I]  how often each validation identity is drawn (facemac.analysis.bootstrap.draw_counts
                                 with ``ValidationSet.identity_weights``); None = the sample itself (B = 1)
  ConfusionStats   float64 [B, A] per field
  TargetSummary    rate float [B, A] or [B, D, A] (counted positives / n, per replicate); mean_prob (mean MAC
                                 probability) and uncertain (share of rows with UNCERTAIN[0] < p < UNCERTAIN[1]) the
                                 same shape: the check needs them, the ``pacc*`` methods need mean_prob
  ShiftCheck       z, failed, applied like ``point``; consistent [] or [D]
  Corrected        point [A] or [D, A] (None without a point summary); replicates and raw like ``rate``
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemac.errors import DataError

log = logging.getLogger(__name__)

# method -> one-line meaning (docs, config errors and the benchmark list these)
METHODS: dict[str, str] = {
    "count": "classify and count: the counted rate, uncorrected",
    "acc_clip": "Rogan–Gladen / ACC with validation tpr, fpr, clipped to [0, 1] (QuaPy's ACC)",
    "pacc_clip": "probabilistic ACC with validation mean probabilities of positives and negatives, clipped (QuaPy)",
    "acc_bayes": "ACC; posterior mean under a flat prior on [0, 1] with the bootstrap's spread (never clips to 0)",
    "pacc_bayes": "PACC with the same boundary treatment as acc_bayes",
}
DEFAULT_METHOD = "acc_bayes"  # chosen by benchmarks/correction_candidates.py (docs/analyze.md "Without an audit")
MIN_SEPARATION = 1e-3  # tpr - fpr (or p1 - p0) is at least this: a chance-level MAC gives a [0, 1] interval
RAW_LIMIT = 10.0  # unconstrained estimates are kept within [-10, 11]: far enough to stay honest, finite for the maths

# The assumption check: under "errs as on validation" the target's probabilities are a mixture of the validation
# positives' and negatives' (a shift of the rates only), so every moment of them is predicted by the corrected rate.
UNCERTAIN = (0.15, 0.85)  # the band whose share of rows is the second checked moment (the first: the mean)
Z_CRIT = 4.0  # |observed - predicted| / its bootstrap sd above this fails an attribute
MAX_FAILED_SHARE = 0.10  # a dataset with more failed attributes than this errs unlike validation: nothing corrected

VALIDATION_WARNING = "checkpoint predates validation predictions; retrain to enable the correction"
_warned: set[str] = set()


def uncertain(probs: np.ndarray) -> np.ndarray:
    """bool: rows whose probability lies inside the UNCERTAIN band (the engine streams the share of these per
    attribute as TargetSummary.uncertain)."""
    p = np.asarray(probs)
    return (p > UNCERTAIN[0]) & (p < UNCERTAIN[1])


def needs_mean_prob(method: str) -> bool:
    """True when ``method`` needs the target's mean probability per attribute (TargetSummary.mean_prob)."""
    check_method(method)
    return method.startswith("pacc")


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"correction method {method!r} is unknown; choose one of {', '.join(METHODS)}")


@dataclass
class ValidationSet:
    """The MAC's validation predictions: what its errors look like where the truth is known.

    ``identity`` int64 [N] codes 0..I-1 (rows without a known identity each get their own code); ``labels`` int8
    [N, A], 1/0, -1 unknown (masked: never counted); ``probs`` float32 [N, A]; ``thresholds`` float64 [A], the set the
    annotation's labels use (``probability > threshold``); ``source`` names where it came from (for messages).
    """

    attributes: list[str]
    identity: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    thresholds: np.ndarray
    source: str = "validation"
    _per_identity: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.identity = np.asarray(self.identity, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int8)
        self.probs = np.asarray(self.probs, dtype=np.float32)
        self.thresholds = np.asarray(self.thresholds, dtype=np.float64)
        n, a = len(self.identity), len(self.attributes)
        if self.labels.shape != (n, a) or self.probs.shape != (n, a) or self.thresholds.shape != (a,):
            raise DataError(f"{self.source}: validation arrays disagree: {n} identities, {a} attributes, labels "
                            f"{self.labels.shape}, probs {self.probs.shape}, thresholds {self.thresholds.shape}")
        if n and (self.identity.min() < 0):
            raise DataError(f"{self.source}: validation identity codes must be >= 0")
        if not np.isin(self.labels, (-1, 0, 1)).all():
            raise DataError(f"{self.source}: validation labels must be 1, 0 or -1 (unknown)")

    @property
    def num_rows(self) -> int:
        return len(self.identity)

    @property
    def num_identities(self) -> int:
        return int(self.identity.max()) + 1 if len(self.identity) else 0

    @property
    def identity_weights(self) -> np.ndarray:
        """float64 [I] ones: every identity is one draw (``draw_counts(rng, vs.identity_weights, B)``)."""
        return np.ones(self.num_identities)

    def select(self, attributes: list[str]) -> ValidationSet:
        """The same rows restricted to ``attributes`` (in that order); DataError naming the missing ones."""
        missing = [a for a in attributes if a not in self.attributes]
        if missing:
            raise DataError(f"{self.source}: validation predictions lack attributes {missing[:5]}")
        cols = [self.attributes.index(a) for a in attributes]
        return ValidationSet(list(attributes), self.identity, self.labels[:, cols], self.probs[:, cols],
                             self.thresholds[cols], self.source)

    def per_identity(self) -> dict[str, np.ndarray]:
        """float64 [I, A] sums per identity: pos, neg (defined labels), tp, fp (``prob > threshold``), prob_pos,
        prob_neg (probability sums over positives / negatives), unc_pos, unc_neg (rows in the UNCERTAIN band).
        Computed once; resampling is then a matrix product."""
        if self._per_identity is None:
            y1 = self.labels == 1
            y0 = self.labels == 0
            pred = self.probs > self.thresholds.astype(np.float32)
            p = self.probs.astype(np.float64)
            unc = uncertain(self.probs)
            cols = {"pos": y1, "neg": y0, "tp": y1 & pred, "fp": y0 & pred, "prob_pos": np.where(y1, p, 0.0),
                    "prob_neg": np.where(y0, p, 0.0), "unc_pos": y1 & unc, "unc_neg": y0 & unc}
            order = np.argsort(self.identity, kind="stable")  # rows of one identity together: one reduceat each
            ids = self.identity[order]
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
            out = {}
            for k, v in cols.items():
                acc = np.zeros((self.num_identities, len(self.attributes)))
                if len(ids):
                    acc[ids[starts]] = np.add.reduceat(v[order].astype(np.float64), starts, axis=0)
                out[k] = acc
            self._per_identity = out
        return self._per_identity


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (an attribute with no validation positives or negatives), without warnings."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


@dataclass
class ConfusionStats:
    """Validation confusion sums per replicate and attribute (float64 [B, A] each); rates as properties."""

    pos: np.ndarray
    neg: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    prob_pos: np.ndarray
    prob_neg: np.ndarray
    unc_pos: np.ndarray
    unc_neg: np.ndarray

    @property
    def tpr(self) -> np.ndarray:
        return _ratio(self.tp, self.pos)

    @property
    def fpr(self) -> np.ndarray:
        return _ratio(self.fp, self.neg)

    @property
    def p1(self) -> np.ndarray:
        """Mean probability of the validation positives."""
        return _ratio(self.prob_pos, self.pos)

    @property
    def p0(self) -> np.ndarray:
        """Mean probability of the validation negatives."""
        return _ratio(self.prob_neg, self.neg)

    @property
    def u1(self) -> np.ndarray:
        """Share of the validation positives in the UNCERTAIN band."""
        return _ratio(self.unc_pos, self.pos)

    @property
    def u0(self) -> np.ndarray:
        """Share of the validation negatives in the UNCERTAIN band."""
        return _ratio(self.unc_neg, self.neg)


def confusion_stats(vs: ValidationSet, identity_draws: np.ndarray | None = None) -> ConfusionStats:
    """Confusion sums of the validation split, once (``identity_draws`` None: [1, A]) or per bootstrap replicate
    (``identity_draws`` [B, I] draw counts: each identity's rows weigh as often as it is drawn)."""
    per = vs.per_identity()
    if identity_draws is None:
        return ConfusionStats(**{k: v.sum(0, keepdims=True) for k, v in per.items()})
    w = np.asarray(identity_draws)
    if w.ndim != 2 or w.shape[1] != vs.num_identities:
        raise ValueError(f"identity_draws must be [B, {vs.num_identities}], got {w.shape}")
    return ConfusionStats(**{k: np.einsum("bi,ia->ba", w, v, dtype=np.float64) for k, v in per.items()})


@dataclass
class TargetSummary:
    """What the engine knows of one target (or several, [B, D, A]) per replicate: the counted rate, the mean
    probability (``pacc*`` methods and the assumption check) and the share of rows in the UNCERTAIN band (the check).
    Stream per identity: hard-label counts, probability sums and ``uncertain(p)`` counts, as the counts already are."""

    rate: np.ndarray
    mean_prob: np.ndarray | None = None
    uncertain: np.ndarray | None = None


@dataclass
class Corrected:
    """Corrected rates: ``point`` (from the point summary), ``replicates`` (feed KL/JS per replicate), ``raw`` (the
    unconstrained replicates, for the rate's interval), ``method``."""

    point: np.ndarray | None
    replicates: np.ndarray
    raw: np.ndarray
    method: str
    check: ShiftCheck | None = None  # None: not checked (check=False, or no mean_prob / uncertain given)

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the unconstrained replicates clipped to [0, 1]: it reaches 0 (or 1) when the
        data allow it, instead of collapsing there (NaN replicates ignored)."""
        tail = (1.0 - level) / 2.0 * 100.0
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanpercentile loops in Python: only where NaN is
            pct = np.nanpercentile if np.isnan(self.raw).any() else np.percentile
            lo, hi = pct(self.raw, [tail, 100.0 - tail], axis=0)
        return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)


@dataclass
class ShiftCheck:
    """Does the target look like a rate shift of the validation split? ``z`` [A] or [D, A]: the largest |z| of the
    checked moments (mean probability, UNCERTAIN share) against what the corrected rate predicts; ``failed`` where it
    exceeds Z_CRIT; ``consistent`` [] or [D]: at most MAX_FAILED_SHARE of the attributes failed. ``applied`` [A] or
    [D, A]: where the correction was used (consistent dataset and the attribute passed); elsewhere the counted rate
    stands, and the outputs must say the MAC errs on this dataset unlike on its validation split (an audit helps)."""

    z: np.ndarray
    failed: np.ndarray
    consistent: np.ndarray
    applied: np.ndarray


def shift_check(target: TargetSummary, stats: ConfusionStats, point: TargetSummary | None = None,
                point_stats: ConfusionStats | None = None) -> ShiftCheck | None:
    """The assumption check (module docstring); None when the target gives neither mean_prob nor uncertain."""
    rate = np.asarray(target.rate, dtype=np.float64)
    ps = point_stats if point_stats is not None else stats

    def gap(summary: TargetSummary, st: ConfusionStats, field_: str, hi: str, lo: str) -> np.ndarray:
        """observed moment - the moment predicted by the (clipped ACC) rate, per replicate."""
        pi = np.clip(unconstrained(summary, st, "acc_clip"), 0.0, 1.0)
        r = np.asarray(summary.rate)
        m1 = np.nan_to_num(_expand(getattr(st, hi), r), nan=0.0)
        m0 = np.nan_to_num(_expand(getattr(st, lo), r), nan=0.0)
        return np.asarray(getattr(summary, field_), np.float64) - (pi * m1 + (1.0 - pi) * m0)

    zs = []
    for field_, hi, lo in (("mean_prob", "p1", "p0"), ("uncertain", "u1", "u0")):
        if getattr(target, field_) is None:
            continue
        d = gap(target, stats, field_, hi, lo)
        d0 = gap(point, ps, field_, hi, lo)[0] if point is not None and getattr(point, field_) is not None \
            else np.nanmean(d, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sd = np.nanstd(d, axis=0, ddof=1) if d.shape[0] >= 2 else np.full(d.shape[1:], np.nan)
            z = np.where(np.abs(d0) < 1e-12, 0.0, np.abs(d0) / np.maximum(sd, 1e-9))
        zs.append(np.where(np.isfinite(d0) & np.isfinite(rate).all(0), z, np.nan))
    if not zs:
        return None
    z = np.fmax.reduce(zs) if len(zs) > 1 else zs[0]
    failed = np.nan_to_num(z, nan=0.0) > Z_CRIT
    defined = np.isfinite(z)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = failed.sum(-1) / np.maximum(defined.sum(-1), 1)
    consistent = share <= MAX_FAILED_SHARE
    applied = ~failed & np.asarray(consistent)[..., None]
    return ShiftCheck(z, failed, np.asarray(consistent), applied)


@dataclass
class RowMoments:
    """Row-level sums per attribute (float64 [A] or [D, A]) over a target's rows with a defined probability, for an
    engine that keeps per identity only the hard-label counts: ``n``; ``y`` (hard labels ``p > threshold``), ``p``,
    ``u`` (``uncertain(p)``); ``pp`` (p^2), ``yp``, ``yu``, ``pu`` (products). ``moment_replicates`` turns them into
    replicates of the check's moments that move with the counted rate's replicates, as streamed ones would."""

    n: np.ndarray
    y: np.ndarray
    p: np.ndarray
    u: np.ndarray
    pp: np.ndarray
    yp: np.ndarray
    yu: np.ndarray
    pu: np.ndarray

    @classmethod
    def of(cls, probs: np.ndarray, thresholds: np.ndarray) -> RowMoments:
        """The sums of one table's probabilities [N, A] (the oracle for an engine's streamed sums)."""
        p = np.asarray(probs, np.float64)
        y = (np.asarray(probs) > np.asarray(thresholds, np.float32)).astype(np.float64)
        u = uncertain(probs).astype(np.float64)
        return cls(np.full(p.shape[1], float(len(p))), y.sum(0), p.sum(0), u.sum(0), (p * p).sum(0),
                   (y * p).sum(0), (y * u).sum(0), (p * u).sum(0))


def moment_replicates(counted_b: np.ndarray, rm: RowMoments,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mean_prob, uncertain) replicates [B, ...] for the check, drawn jointly normal *given* the counted rate's
    replicates ``counted_b`` [B, A] or [B, D, A]: the regression of each moment on the hard label (row level) carries
    the replicate's rate shift over, the residual (its covariance from the row sums) is drawn, and both are scaled by
    the identity bootstrap's inflation of the counted rate's variance over the i.i.d. one. Independent noise instead
    would miss the moments' correlation with the rate and weaken the check (on the demo it let a synthetic-like
    target of the default MAC pass); these draws reject what streamed per-identity moments reject
    (benchmarks/correction_candidates.py, tests)."""
    n = np.maximum(rm.n, 1.0)
    my, mp, mu = rm.y / n, rm.p / n, rm.u / n
    vy = np.clip(my - my * my, 0.0, None)
    c_py, c_uy = rm.yp / n - mp * my, rm.yu / n - mu * my
    v_p, v_u, c_pu = np.clip(rm.pp / n - mp * mp, 0.0, None), np.clip(mu - mu * mu, 0.0, None), rm.pu / n - mp * mu
    with np.errstate(invalid="ignore", divide="ignore"):
        b_p = np.where(vy > 0, c_py / np.where(vy > 0, vy, 1.0), 0.0)
        b_u = np.where(vy > 0, c_uy / np.where(vy > 0, vy, 1.0), 0.0)
        r_p = np.clip(v_p - b_p * c_py, 0.0, None)
        r_u = np.clip(v_u - b_u * c_uy, 0.0, None)
        r_pu = c_pu - b_p * c_uy
        den = np.sqrt(r_p * r_u)
        rho = np.clip(np.where(den > 0, r_pu / np.where(den > 0, den, 1.0), 0.0), -1.0, 1.0)
        q = np.asarray(counted_b, np.float64)
        iid = np.sqrt(vy / n)
        spread = np.nanstd(q, axis=0, ddof=1) if q.shape[0] >= 2 else np.zeros(q.shape[1:])
        inflation = np.maximum(np.where(iid > 0, spread / np.where(iid > 0, iid, 1.0), 1.0), 1.0)
    inflation = np.nan_to_num(inflation, nan=1.0)
    z1, z2 = rng.standard_normal(q.shape), rng.standard_normal(q.shape)
    scale = inflation / np.sqrt(n)
    shift = q - my
    mean_prob = mp + b_p * shift + np.sqrt(r_p) * z1 * scale
    unc = mu + b_u * shift + np.sqrt(r_u) * (rho * z1 + np.sqrt(1.0 - rho * rho) * z2) * scale
    return mean_prob, unc


def _expand(stat: np.ndarray, like: np.ndarray) -> np.ndarray:
    """[B, A] stats against [B, A] or [B, D, A] summaries."""
    return stat[:, None, :] if like.ndim == 3 else stat


def unconstrained(target: TargetSummary, stats: ConfusionStats, method: str) -> np.ndarray:
    """The inversion ``(q - fpr) / (tpr - fpr)`` (ACC) or ``(m - p0) / (p1 - p0)`` (PACC) per replicate, unclipped
    (within +-RAW_LIMIT); ``count`` returns the counted rate."""
    check_method(method)
    rate = np.asarray(target.rate, dtype=np.float64)
    if method == "count":
        return rate.copy()
    if method.startswith("pacc"):
        if target.mean_prob is None:
            raise ValueError(f"correction method {method!r} needs the target's mean probability (mean_prob)")
        value, lo, hi = np.asarray(target.mean_prob, dtype=np.float64), stats.p0, stats.p1
    else:
        value, lo, hi = rate, stats.fpr, stats.tpr
    # a replicate without validation positives (negatives) says nothing of tpr (fpr): QuaPy's convention, no error
    lo, hi = np.nan_to_num(_expand(lo, rate), nan=0.0), np.nan_to_num(_expand(hi, rate), nan=1.0)
    sep = np.maximum(hi - lo, MIN_SEPARATION)
    with np.errstate(invalid="ignore"):
        return np.clip((value - lo) / sep, -RAW_LIMIT, 1.0 + RAW_LIMIT)


def posterior_mean(m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Mean of N(m, s^2) truncated to [0, 1] (the posterior of a rate under a flat prior with a normal likelihood);
    ``clip(m)`` where s is 0 or undefined. Closed form in log space, stable in both tails (scipy's truncnorm.mean is
    the oracle in the tests; it is ~50x slower on the engine's [B, D, A] arrays)."""
    from scipy.special import log_ndtr

    m, s = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s, np.float64))
    out = np.clip(m, 0.0, 1.0)
    ok = np.isfinite(m) & np.isfinite(s) & (s > 1e-12)
    if ok.any():
        mm, ss = m[ok], s[ok]
        lo, hi = -mm / ss, (1.0 - mm) / ss  # the bounds in standard units
        upper = lo > 0  # both bounds in the upper tail: work with the mirrored (lower-tail) probabilities
        a = np.where(upper, -hi, lo)
        b = np.where(upper, -lo, hi)
        la, lb = log_ndtr(a), log_ndtr(b)  # log Phi(a) <= log Phi(b)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_z = lb + np.log1p(-np.exp(la - lb))  # log(Phi(b) - Phi(a))
            log_phi = lambda x: -0.5 * x * x - 0.5 * np.log(2.0 * np.pi)  # noqa: E731
            # (phi(lo) - phi(hi)) / Z, written from the larger density
            lp_lo, lp_hi = log_phi(lo), log_phi(hi)
            big = np.maximum(lp_lo, lp_hi)
            ratio = np.sign(lp_lo - lp_hi) * np.exp(big - log_z) * -np.expm1(-np.abs(lp_lo - lp_hi))
        val = mm + ss * ratio
        out = out.copy()
        out[ok] = np.clip(np.where(np.isfinite(val), val, np.clip(mm, 0.0, 1.0)), 0.0, 1.0)
    out[~np.isfinite(m)] = np.nan
    return out


def correct(target: TargetSummary, stats: ConfusionStats, method: str = DEFAULT_METHOD,
            point: TargetSummary | None = None, point_stats: ConfusionStats | None = None,
            check: bool = True) -> Corrected:
    """Corrected rates after the assumption check (``check``: shift_check; where it fails, the counted rate stands and
    ``Corrected.check.applied`` is False; it needs ``mean_prob`` and/or ``uncertain`` in the summaries, else
    ValueError: correcting unchecked must be asked for with ``check=False``). See ``correct_unchecked`` for the maths.
    The default (acc_bayes, checked) was chosen by benchmarks/correction_candidates.py: it is the one candidate that
    beats counting on the MAC's own domain for every demo MAC without any cell confidently much worse."""
    out = correct_unchecked(target, stats, method, point, point_stats)
    if not check or method == "count":
        return out
    sc = shift_check(target, stats, point, point_stats)
    if sc is None:
        raise ValueError("the assumption check needs the target's mean_prob and/or uncertain share per replicate; "
                         "pass check=False to correct without it")
    counted = correct_unchecked(target, stats, "count", point, point_stats)
    keep = sc.applied
    return Corrected(None if out.point is None else np.where(keep, out.point, counted.point),
                     np.where(keep, out.replicates, counted.replicates), np.where(keep, out.raw, counted.raw),
                     method, sc)


def correct_unchecked(target: TargetSummary, stats: ConfusionStats, method: str = DEFAULT_METHOD,
                      point: TargetSummary | None = None, point_stats: ConfusionStats | None = None) -> Corrected:
    """Corrected rates per replicate (``target`` with ``stats`` from the same replicates' validation draws) and, with
    ``point``/``point_stats`` (B = 1: the samples themselves), the point estimate.

    ``*_clip``: the inversion clipped to [0, 1]. ``*_bayes``: each replicate's (and the point's) posterior mean under
    a flat prior, with the spread ``s`` = the standard deviation of the unconstrained replicates per attribute (so it
    needs B >= 2; with B = 1 it equals clipping). ``count``: unchanged. NaN rates (no defined rows) stay NaN.
    """
    raw = unconstrained(target, stats, method)
    raw_point = None if point is None else unconstrained(point, point_stats if point_stats is not None else stats,
                                                         method)[0]
    if method == "count" or method.endswith("_clip"):
        reps = np.clip(raw, 0.0, 1.0)
        pt = None if raw_point is None else np.clip(raw_point, 0.0, 1.0)
        return Corrected(pt, reps, raw, method)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN attributes (no defined rows) stay NaN
        s = np.nanstd(raw, axis=0, ddof=1) if raw.shape[0] >= 2 else np.zeros(raw.shape[1:])
    reps = posterior_mean(raw, s[None])
    pt = None if raw_point is None else posterior_mean(raw_point, s)
    return Corrected(pt, reps, raw, method)


def load_validation(table_dir: str | Path, label_rule: str | None = None) -> ValidationSet | None:
    """The validation predictions an annotation table carries, with the thresholds its labels use (``label_rule``:
    ``counting`` | ``reporting`` | None = the manifest's own set); None (and a one-time warning) when the table was
    annotated with a checkpoint that predates them. DataError naming the file when it is there but broken."""
    from facemac.annotation_table import VALIDATION_KEY, label_thresholds, read_manifest, read_validation

    table_dir = Path(table_dir)
    manifest = read_manifest(table_dir)
    if manifest is None:
        raise DataError(f"{table_dir}: no manifest.json; not an annotation table")
    entry = manifest.get(VALIDATION_KEY)
    if not entry:
        key = str(manifest.get("checkpoint_sha256") or table_dir)
        if key not in _warned:
            _warned.add(key)
            log.warning("%s: %s", table_dir, VALIDATION_WARNING)
        return None
    identity, labels, probs, attributes = read_validation(table_dir, entry)
    thresholds, _ = label_thresholds(manifest, label_rule, table_dir / "manifest.json")
    if list(attributes) != list(manifest["attributes"]):
        raise DataError(f"{table_dir / entry['file']}: attributes differ from the manifest's")
    return ValidationSet(list(attributes), identity, labels, probs, np.array([thresholds[a] for a in attributes]),
                         source=str(table_dir / entry["file"]))


__all__ = ["METHODS", "DEFAULT_METHOD", "VALIDATION_WARNING", "UNCERTAIN", "Z_CRIT", "MAX_FAILED_SHARE",
           "ValidationSet", "ConfusionStats", "TargetSummary", "Corrected", "ShiftCheck", "RowMoments",
           "moment_replicates", "confusion_stats", "correct",
           "correct_unchecked", "shift_check", "uncertain", "unconstrained", "posterior_mean", "load_validation",
           "needs_mean_prob", "check_method"]
