"""Layer-wise learning-rate decay for fine-tuning a pretrained backbone (BEiT, MAE): with L layer groups, group k
trains at ``lr * d ** (L - 1 - k)`` and the attribute head at the full ``lr``, so features near the pixels, which
transfer best, move least. Groups come from timm's ``param_groups_layer_decay`` (the backbone's ``group_matcher``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from facemac.errors import ConfigError


def layer_decay_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups of a MAC (``backbone`` + ``head``) with per-group ``lr`` already scaled.

    Norms, biases and the backbone's ``no_weight_decay()`` parameters (position embeddings, class token) get no weight
    decay, as in the plain split. The scaled ``lr`` is set per group, so any scheduler that multiplies each group's
    initial lr (LambdaLR) keeps the ratios."""
    from timm.optim import param_groups_layer_decay

    d = float(layer_decay)
    if not 0.0 < d <= 1.0:
        raise ConfigError(f"train.layer_decay={layer_decay!r}: must lie in (0, 1] (e.g. 0.65-0.75), or null for off")
    backbone = model.backbone
    skip = set(backbone.no_weight_decay()) if hasattr(backbone, "no_weight_decay") else set()
    groups = param_groups_layer_decay(backbone, weight_decay=weight_decay, no_weight_decay_list=skip, layer_decay=d)
    out = [{"params": g["params"], "weight_decay": g["weight_decay"], "lr": lr * g["lr_scale"],
            "lr_scale": g["lr_scale"]} for g in groups]
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    out.append({"params": [p for p in head if p.ndim > 1], "weight_decay": weight_decay, "lr": lr, "lr_scale": 1.0})
    out.append({"params": [p for p in head if p.ndim <= 1], "weight_decay": 0.0, "lr": lr, "lr_scale": 1.0})
    return [g for g in out if g["params"]]
