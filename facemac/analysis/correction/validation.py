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

Shapes (B replicates, I validation identities, N validation rows, A attributes; optional D datasets):
  identity_draws   float [B, I]  how often each validation identity is drawn (facemac.analysis.bootstrap.draw_counts
                                 with ``ValidationSet.identity_weights``); None = the sample itself (B = 1)
  ConfusionStats   float64 [B, A] per field
  TargetSummary    rate float [B, A] or [B, D, A] (counted positives / n, per replicate); mean_prob the same shape
                                 (mean MAC probability; needed by the ``pacc*`` methods only, see ``needs_mean_prob``)
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
    "pacc_clip": "probabilistic ACC with validation mean probabilities of positives and negatives, clipped (QuaPy's PACC)",
    "acc_bayes": "ACC; posterior mean under a flat prior on [0, 1] with the bootstrap's spread (never clips to 0)",
    "pacc_bayes": "PACC with the same boundary treatment as acc_bayes",
}
DEFAULT_METHOD = "acc_bayes"  # chosen by benchmarks/correction_candidates.py (docs/analyze.md "Without an audit")
MIN_SEPARATION = 1e-3  # tpr - fpr (or p1 - p0) below this is treated as this: a chance-level MAC gives a [0, 1] interval
RAW_LIMIT = 10.0  # unconstrained estimates are kept within [-10, 11]: far enough to stay honest, finite for the maths

VALIDATION_WARNING = "checkpoint predates validation predictions; retrain to enable the correction"
_warned: set[str] = set()


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
        prob_neg (probability sums over positives / negatives). Computed once; resampling is then a matrix product."""
        if self._per_identity is None:
            y1 = self.labels == 1
            y0 = self.labels == 0
            pred = self.probs > self.thresholds.astype(np.float32)
            p = self.probs.astype(np.float64)
            i = self.num_identities
            cols = {"pos": y1, "neg": y0, "tp": y1 & pred, "fp": y0 & pred, "prob_pos": np.where(y1, p, 0.0),
                    "prob_neg": np.where(y0, p, 0.0)}
            out = {}
            for k, v in cols.items():
                acc = np.zeros((i, len(self.attributes)))
                np.add.at(acc, self.identity, v.astype(np.float64))
                out[k] = acc
            self._per_identity = out
        return self._per_identity


@dataclass
class ConfusionStats:
    """Validation confusion sums per replicate and attribute (float64 [B, A] each); rates as properties."""

    pos: np.ndarray
    neg: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    prob_pos: np.ndarray
    prob_neg: np.ndarray

    @property
    def tpr(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.tp / self.pos

    @property
    def fpr(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.fp / self.neg

    @property
    def p1(self) -> np.ndarray:
        """Mean probability of the validation positives."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.prob_pos / self.pos

    @property
    def p0(self) -> np.ndarray:
        """Mean probability of the validation negatives."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.prob_neg / self.neg


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
    """What the engine knows of one target (or several, [B, D, A]) per replicate: the counted rate and, for the
    ``pacc*`` methods, the mean probability (stream probability sums per identity to get it)."""

    rate: np.ndarray
    mean_prob: np.ndarray | None = None


@dataclass
class Corrected:
    """Corrected rates: ``point`` (from the point summary), ``replicates`` (feed KL/JS per replicate), ``raw`` (the
    unconstrained replicates, for the rate's interval), ``method``."""

    point: np.ndarray | None
    replicates: np.ndarray
    raw: np.ndarray
    method: str

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the unconstrained replicates clipped to [0, 1]: it reaches 0 (or 1) when the
        data allow it, instead of collapsing there (NaN replicates ignored)."""
        tail = (1.0 - level) / 2.0 * 100.0
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanpercentile(self.raw, [tail, 100.0 - tail], axis=0)
        return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)


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
    ``clip(m)`` where s is 0 or undefined. Stable in both tails (scipy's truncnorm)."""
    from scipy.stats import truncnorm

    m, s = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s, np.float64))
    out = np.clip(m, 0.0, 1.0)
    ok = np.isfinite(m) & np.isfinite(s) & (s > 1e-12)
    if ok.any():
        mm, ss = m[ok], s[ok]
        out = out.copy()
        out[ok] = np.clip(truncnorm.mean((0.0 - mm) / ss, (1.0 - mm) / ss, loc=mm, scale=ss), 0.0, 1.0)
    out[~np.isfinite(m)] = np.nan
    return out


def correct(target: TargetSummary, stats: ConfusionStats, method: str = DEFAULT_METHOD,
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


__all__ = ["METHODS", "DEFAULT_METHOD", "VALIDATION_WARNING", "ValidationSet", "ConfusionStats", "TargetSummary",
           "Corrected", "confusion_stats", "correct", "unconstrained", "posterior_mean", "load_validation",
           "needs_mean_prob", "check_method"]
