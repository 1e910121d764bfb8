"""Masked per-attribute metrics (torchmetrics) and their means; mean accuracy and mA are the headline numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import (binary_accuracy, binary_auroc, binary_f1_score, binary_recall,
                                                    binary_specificity)

from facemac.training.logged import metric_key

METRICS = ("accuracy", "balanced_accuracy", "f1", "auroc")


def attribute_metrics(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1 and AUROC of one attribute on its defined cells (prediction: prob > threshold).

    Balanced accuracy and AUROC need both classes; with one missing they are NaN (and left out of the means).
    """
    n = int(labels.numel())
    if n == 0:
        return {m: math.nan for m in METRICS}
    target = (labels > 0.5).long()
    preds = (probs.double() > float(threshold)).long()  # integer preds: torchmetrics applies no threshold of its own
    pos = int(target.sum())
    both = 0 < pos < n
    out = {
        "accuracy": float(binary_accuracy(preds, target)),
        "f1": float(binary_f1_score(preds, target, zero_division=0)),
        "balanced_accuracy": math.nan,
        "auroc": math.nan,
    }
    if both:
        out["balanced_accuracy"] = 0.5 * float(binary_recall(preds, target) + binary_specificity(preds, target))
        out["auroc"] = float(binary_auroc(probs.float(), target))
    return out


def compute_metrics(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                    mask: np.ndarray | torch.Tensor, attributes: list[str],
                    thresholds: list[float] | None = None) -> dict[str, Any]:
    """Per-attribute metrics and their means: {"mean_accuracy", "mA", "mean_f1", "mean_auroc", "per_attribute"}."""
    probs, labels, mask = (torch.as_tensor(np.asarray(x)) for x in (probs, labels, mask))
    mask = mask.bool()
    thresholds = list(thresholds) if thresholds is not None else [0.5] * len(attributes)
    per: dict[str, dict[str, float]] = {}
    for a, name in enumerate(attributes):
        m = mask[:, a]
        row = attribute_metrics(probs[m, a], labels[m, a], thresholds[a])
        row["threshold"] = float(thresholds[a])
        per[name] = row
    mean = lambda key: _nanmean([per[n][key] for n in attributes])  # noqa: E731
    return {"mean_accuracy": mean("accuracy"), "mA": mean("balanced_accuracy"), "mean_f1": mean("f1"),
            "mean_auroc": mean("auroc"), "per_attribute": per}


def _nanmean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else math.nan


def flat_history(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """{"val/mA": …, "val/Smiling/accuracy": …} for trackers (per-attribute numbers become history)."""
    out = {metric_key(prefix, k): v for k, v in metrics.items() if k != "per_attribute"}
    for attr, row in metrics.get("per_attribute", {}).items():
        for k, v in row.items():
            out[metric_key(prefix, attr, k)] = v
    return out
