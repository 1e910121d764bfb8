"""Learning-rate schedules built per step, so warm-up and decay do not depend on the epoch length."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int | None = None,
                       warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0) -> LambdaLR:
    """Linear warm-up from ~0 to the base LR, then cosine decay to ``min_lr_ratio`` x base LR at ``total_steps``."""
    total = max(int(total_steps), 1)
    warm = int(warmup_steps) if warmup_steps is not None else int(round(warmup_fraction * total))
    warm = min(max(warm, 0), total - 1) if total > 1 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = min((step - warm) / max(total - warm, 1), 1.0)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def constant(optimizer: torch.optim.Optimizer, total_steps: int) -> LambdaLR:
    """No schedule (for debugging); same call signature as the others."""
    return LambdaLR(optimizer, lambda step: 1.0)
