"""Exponential moving average of the weights: often a steadier model to select and ship than the last step's."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """A shadow copy updated as ``ema = decay * ema + (1 - decay) * model`` (buffers copied), used for evaluation."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            s = src[k].detach()
            if v.dtype.is_floating_point:
                v.mul_(self.decay).add_(s.to(v.dtype), alpha=1.0 - self.decay)
            else:
                v.copy_(s)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
