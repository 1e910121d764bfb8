"""Per-attribute metrics and threshold tuning against independent computations (numpy, scipy, brute force)."""

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from facemac.training.metrics import compute_metrics, flat_history
from facemac.training.thresholds import tune_threshold, tune_thresholds


def _hand(p, y, t):
    pred = p > t
    tp = np.sum(pred & (y == 1)); tn = np.sum(~pred & (y == 0))
    fp = np.sum(pred & (y == 0)); fn = np.sum(~pred & (y == 1))
    acc = (tp + tn) / len(y)
    bacc = 0.5 * (tp / (tp + fn) + tn / (tn + fp))
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    u = mannwhitneyu(p[y == 1], p[y == 0]).statistic
    auroc = u / (np.sum(y == 1) * np.sum(y == 0))
    return acc, bacc, f1, auroc


def test_metrics_match_hand_computation_with_mask():
    rng = np.random.default_rng(0)
    n, a = 200, 3
    y = rng.integers(0, 2, (n, a)).astype(np.float32)
    p = np.clip(0.3 * y + rng.random((n, a)) * 0.7, 0, 1).astype(np.float32)
    mask = rng.random((n, a)) > 0.2
    thr = [0.5, 0.4, 0.65]
    out = compute_metrics(p, y, mask, ["a", "b", "c"], thr)
    accs, baccs = [], []
    for j, name in enumerate("abc"):
        m = mask[:, j]
        acc, bacc, f1, auroc = _hand(p[m, j].astype(np.float64), y[m, j], thr[j])
        row = out["per_attribute"][name]
        assert row["accuracy"] == pytest.approx(acc, abs=1e-6)
        assert row["balanced_accuracy"] == pytest.approx(bacc, abs=1e-6)
        assert row["f1"] == pytest.approx(f1, abs=1e-6)
        assert row["auroc"] == pytest.approx(auroc, abs=1e-5)
        assert row["threshold"] == thr[j]
        accs.append(acc); baccs.append(bacc)
    assert out["mean_accuracy"] == pytest.approx(np.mean(accs), abs=1e-6)
    assert out["mA"] == pytest.approx(np.mean(baccs), abs=1e-6)


def test_masked_cells_are_ignored():
    p = np.array([[0.9], [0.1], [0.8], [0.2]], dtype=np.float32)
    y = np.array([[1], [0], [0], [1]], dtype=np.float32)
    mask = np.array([[1], [1], [0], [0]], dtype=bool)  # the two wrong predictions are undefined cells
    out = compute_metrics(p, y, mask, ["x"])
    assert out["per_attribute"]["x"]["accuracy"] == 1.0
    assert out["mA"] == 1.0


def test_one_class_gives_nan_balanced_accuracy_and_is_left_out_of_mA():
    p = np.array([[0.9, 0.9], [0.8, 0.1]], dtype=np.float32)
    y = np.array([[1, 1], [1, 0]], dtype=np.float32)
    out = compute_metrics(p, y, np.ones_like(y, dtype=bool), ["only_pos", "both"])
    assert math.isnan(out["per_attribute"]["only_pos"]["balanced_accuracy"])
    assert math.isnan(out["per_attribute"]["only_pos"]["auroc"])
    assert out["mA"] == 1.0  # from "both" alone
    assert out["per_attribute"]["only_pos"]["accuracy"] == 1.0
    flat = flat_history(out, "val")
    assert flat["val/mA"] == 1.0 and "val/both/f1" in flat


@pytest.mark.parametrize("objective", ["balanced_accuracy", "accuracy", "f1"])
def test_tuned_threshold_is_optimal_against_brute_force(objective):
    rng = np.random.default_rng(1)
    y = (rng.random(150) < 0.25).astype(np.float32)
    p = np.clip(0.25 * y + rng.random(150) * 0.6, 0, 1).round(2)  # ties on purpose
    t = tune_threshold(p, y, objective)

    def score(th):
        pred = p > th
        tp = np.sum(pred & (y == 1)); tn = np.sum(~pred & (y == 0))
        fp = np.sum(pred & (y == 0)); fn = np.sum(~pred & (y == 1))
        return {"accuracy": (tp + tn) / len(y), "balanced_accuracy": 0.5 * (tp / (tp + fn) + tn / (tn + fp)),
                "f1": 2 * tp / max(2 * tp + fp + fn, 1)}[objective]
    grid = np.linspace(-0.001, 1.001, 4001)
    best = max(score(g) for g in grid)
    assert score(t) == pytest.approx(best, abs=1e-12)
    assert 0.0 <= t <= 1.0


def test_thresholds_per_attribute_use_only_defined_cells_and_default_to_half():
    p = np.array([[0.2, 0.7], [0.3, 0.6], [0.9, 0.1]], dtype=np.float32)
    y = np.array([[1, 1], [1, 1], [0, 0]], dtype=np.float32)
    mask = np.array([[1, 1], [1, 1], [0, 1]], dtype=bool)
    t = tune_thresholds(p, y, mask)
    assert t[0] == 0.5  # only positives are defined: nothing to tune
    assert 0.1 <= t[1] < 0.6  # separates 0.1 (neg) from 0.6/0.7 (pos)
    with pytest.raises(ValueError, match="threshold_objective"):
        tune_thresholds(p, y, mask, "precision")


def test_counting_rules_rate_match_and_accuracy():
    from facemac.training.counting import counting_thresholds, rate_match_threshold

    p = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 0, 1, 0, 1, 0, 0, 0])  # 3 positives: the cut keeps the top 3 predicted positive
    t = rate_match_threshold(p, y)
    assert (p > t).sum() == y.sum() and t == pytest.approx(0.65)
    assert rate_match_threshold(p, np.zeros(8)) == 0.5 and rate_match_threshold(p, np.ones(8)) == 0.5
    probs, labels = np.stack([p, p[::-1]], 1), np.stack([y, y[::-1]], 1)
    mask = np.ones_like(labels, dtype=bool)
    assert counting_thresholds(probs, labels, mask, "accuracy") == tune_thresholds(probs, labels, mask, "accuracy")
    assert counting_thresholds(probs, labels, mask, "rate_match")[0] == pytest.approx(0.65)
    mask[0, 0] = False  # only defined cells count: the top cell (a positive) is gone, 2 positives remain
    assert counting_thresholds(probs, labels, mask, "rate_match")[0] == pytest.approx(0.65)
    with pytest.raises(ValueError, match="counting rule 'median' is unknown"):
        counting_thresholds(probs, labels, mask, "median")
