"""Per-attribute decision thresholds tuned on validation: a MAC's probabilities are rarely calibrated at 0.5."""

from __future__ import annotations

import numpy as np

OBJECTIVES = ("balanced_accuracy", "accuracy", "f1")
DEFAULT_THRESHOLD = 0.5


def _objective(name: str, tp: np.ndarray, fp: np.ndarray, pos: int, neg: int) -> np.ndarray:
    """Objective for every cut, from cumulative confusion counts (predicted positive = prob > threshold)."""
    fn, tn = pos - tp, neg - fp
    if name == "accuracy":
        return (tp + tn) / (pos + neg)
    if name == "balanced_accuracy":
        return 0.5 * (tp / pos + tn / neg)
    if name == "f1":
        return np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    raise ValueError(f"train.threshold_objective={name!r} is unknown; choose one of {', '.join(OBJECTIVES)}")


def tune_threshold(probs: np.ndarray, labels: np.ndarray, objective: str = "balanced_accuracy") -> float:
    """The threshold t maximising ``objective`` for the rule ``prob > t`` on one attribute's defined cells.

    Candidates sit between consecutive distinct probabilities (plus "all negative" and "all positive"); ties go to the
    candidate nearest 0.5. With one class missing the objective says nothing, so 0.5 is kept.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64) > 0.5
    _objective(objective, np.zeros(1), np.zeros(1), 1, 1)  # validates the name even for degenerate inputs
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return DEFAULT_THRESHOLD
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.concatenate([[0], np.cumsum(ys)])  # cut k: the top k are predicted positive, k = 0..n
    fp = np.concatenate([[0], np.cumsum(~ys)])
    n = len(ps)
    k = np.arange(n + 1)
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = ps[:-1] > ps[1:]  # only cut between distinct values
    thr = np.empty(n + 1)
    thr[0] = ps[0]
    thr[1:n] = 0.5 * (ps[:-1] + ps[1:])
    thr[n] = ps[-1] / 2.0
    if ps[-1] <= 0.0:
        valid[n] = False  # "all positive" is not reachable with prob > t and t >= 0
    score = _objective(objective, tp[k].astype(np.float64), fp[k].astype(np.float64), pos, neg)
    score = np.where(valid, score, -np.inf)
    best = score.max()
    cand = np.flatnonzero(np.isclose(score, best, rtol=0, atol=1e-12))
    pick = cand[np.argmin(np.abs(thr[cand] - 0.5))]
    return float(thr[pick])


def tune_thresholds(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                    objective: str = "balanced_accuracy") -> list[float]:
    """One threshold per attribute (columns), using only the defined (masked-in) cells."""
    probs, labels, mask = np.asarray(probs), np.asarray(labels), np.asarray(mask, dtype=bool)
    return [tune_threshold(probs[mask[:, a], a], labels[mask[:, a], a], objective) for a in range(probs.shape[1])]
