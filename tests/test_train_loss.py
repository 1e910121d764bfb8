"""Masked BCE against a hand computation: undefined cells add nothing; the mean is over defined cells."""

import math

import numpy as np
import torch

from facemac.training.loss import masked_bce, positive_rates


def _bce(z: float, y: float) -> float:
    p = 1 / (1 + math.exp(-z))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_masked_bce_matches_hand_computation():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 1.5, -2.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    mask = torch.tensor([[True, False, True], [True, True, False]])
    cells = [(0, 0), (0, 2), (1, 0), (1, 1)]
    expected = sum(_bce(logits[i, j].item(), labels[i, j].item()) for i, j in cells) / 4
    assert masked_bce(logits, labels, mask).item() == pytest_approx(expected)


def test_masked_cells_contribute_nothing():
    logits = torch.randn(5, 4)
    labels = (torch.rand(5, 4) > 0.5).float()
    mask = torch.rand(5, 4) > 0.3
    flipped = torch.where(mask, labels, 1 - labels)
    other_logits = torch.where(mask, logits, logits + 100.0)
    a = masked_bce(logits, labels, mask)
    assert torch.allclose(a, masked_bce(logits, flipped, mask))
    assert torch.allclose(a, masked_bce(other_logits, labels, mask))


def test_all_masked_is_zero_not_nan():
    assert masked_bce(torch.randn(2, 3), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


def test_positive_rate_weights_follow_rethinking_par():
    labels = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    mask = np.array([[1, 1], [1, 1], [1, 1], [0, 1]], dtype=bool)
    r = positive_rates(labels, mask)
    assert np.allclose(r, [2 / 3, 1 / 4])
    logits = torch.tensor([[0.3, -0.2], [1.0, 0.4], [-0.5, 0.1], [0.0, 0.0]])
    got = masked_bce(logits, torch.from_numpy(labels), torch.from_numpy(mask), torch.from_numpy(r)).item()
    total, count = 0.0, 0
    for i in range(4):
        for j in range(2):
            if mask[i, j]:
                w = math.exp(1 - r[j]) if labels[i, j] else math.exp(r[j])
                total += w * _bce(logits[i, j].item(), labels[i, j])
                count += 1
    assert got == pytest_approx(total / count)


def pytest_approx(x):
    import pytest
    return pytest.approx(x, rel=1e-5)
