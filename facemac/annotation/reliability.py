"""MC-dropout reliability (MAAD-Face style): how much K stochastic predictions of one attribute agree.

For one image and attribute, K forward passes with only the dropout layers active give sigmoid outputs
p_1..p_K in [0, 1]. The reliability is

    reliability = 1 - 2 * std(p_1..p_K)        (population std, ddof=0)

Because every p_k lies in [0, 1], the population std is at most 0.5 (reached when half the passes say 0 and half say
1), so the score lies in [0, 1]: 1 when all passes agree exactly, 0 at maximal disagreement. It measures the model's
(epistemic) stability, not its correctness; the stored probability stays the deterministic (eval-mode) one.
"""

from __future__ import annotations

import torch
from torch import nn


def reliability_from_samples(samples: torch.Tensor) -> torch.Tensor:
    """[K, N, A] sigmoid outputs → [N, A] reliability in [0, 1] (float32)."""
    if samples.ndim != 3 or samples.shape[0] < 2:
        raise ValueError(f"need [K>=2, N, A] samples, got shape {tuple(samples.shape)}")
    std = samples.float().std(dim=0, unbiased=False)
    return (1.0 - 2.0 * std).clamp_(0.0, 1.0)


def dropout_modules(module: nn.Module) -> list[nn.Module]:
    """Every dropout layer with a non-zero rate (the only layers MC sampling switches to train mode)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


def set_mc_dropout(module: nn.Module, active: bool) -> None:
    """Dropout layers in train mode (active) or eval mode; batch-norm and everything else stay in eval."""
    for m in dropout_modules(module):
        m.train(active)
