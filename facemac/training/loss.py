"""Masked multi-label BCE: undefined cells (MAAD-Face's 0s) contribute nothing; rare attributes can be up-weighted."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

WEIGHTINGS = ("none", "positive_rate")


def positive_rates(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-attribute share of positives among defined training cells (0.5 where an attribute has none defined)."""
    labels = np.asarray(labels, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    defined = mask.sum(0)
    pos = (labels * mask).sum(0)
    return np.where(defined > 0, pos / np.maximum(defined, 1), 0.5).astype(np.float32)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
               pos_rate: torch.Tensor | None = None) -> torch.Tensor:
    """Mean BCE-with-logits over defined cells only.

    With ``pos_rate`` (per attribute, from the training split) each cell gets the Rethinking_of_PAR weight
    ``exp(1 - r)`` when positive and ``exp(r)`` when negative, so rare classes weigh more. The sum is divided by the
    number of defined cells (not by batch x attributes), so masked cells neither add loss nor dilute it.
    """
    logits = logits.float()
    labels = labels.to(logits.dtype)
    m = mask.to(logits.dtype)
    cell = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    if pos_rate is not None:
        r = pos_rate.to(logits.device, logits.dtype).view(1, -1)
        cell = cell * torch.exp(labels * (1 - r) + (1 - labels) * r)
    return (cell * m).sum() / m.sum().clamp_min(1.0)
