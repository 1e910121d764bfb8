"""Counting thresholds: per-attribute cuts chosen so that *counts* of positives stay faithful, not the MAC's score.

The analysis turns probabilities into counts of positives per dataset and compares datasets by the KL of those rates.
Thresholds tuned for balanced accuracy (the MAC's reporting metric, mA) move every rare attribute's cut down until
recall equals specificity, so a dataset where the attribute is rare collects false positives from its many negatives:
its rate is inflated and exactly the divergences the paper is about are compressed. The rules here are the
candidates compared on the demo by ``benchmarks/counting_thresholds.py`` (figures in docs/analyze.md).
"""

from __future__ import annotations

import numpy as np

from facemac.training.thresholds import DEFAULT_THRESHOLD, tune_thresholds

# rule name -> one-line meaning (docs and config errors list these)
COUNTING_RULES: dict[str, str] = {
    "accuracy": "the accuracy-optimal cut on validation (fewest errors: false positives and negatives weigh the same)",
    "rate_match": "the cut at which the validation split's predicted positive rate equals its true rate",
    "balanced_accuracy": "the reporting thresholds (mean of recall and specificity); inflates rare attributes",
}


def rate_match_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The cut ``t`` for ``prob > t`` that predicts as many positives as there are (ties: the nearest reachable count);
    0.5 when one class is missing."""
    p = np.sort(np.asarray(probs, dtype=np.float64))[::-1]
    k = int((np.asarray(labels, dtype=np.float64) > 0.5).sum())
    if k == 0 or k == len(p):
        return DEFAULT_THRESHOLD
    return float(0.5 * (p[k - 1] + p[k]))


def counting_thresholds(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, rule: str) -> list[float]:
    """One counting threshold per attribute from validation predictions, using only defined (masked-in) cells."""
    if rule not in COUNTING_RULES:
        raise ValueError(f"counting rule {rule!r} is unknown; choose one of {', '.join(COUNTING_RULES)}")
    if rule in ("accuracy", "balanced_accuracy"):
        return tune_thresholds(probs, labels, mask, rule)
    probs, labels, mask = np.asarray(probs), np.asarray(labels), np.asarray(mask, dtype=bool)
    return [rate_match_threshold(probs[mask[:, a], a], labels[mask[:, a], a]) for a in range(probs.shape[1])]
