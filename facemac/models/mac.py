"""MAC: a timm backbone and one linear head with one logit per attribute (dropout before it)."""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from facemac.errors import CheckpointError, ConfigError
from facemac.models.weights import WeightSource, resolve_weights
from facemac.models.weights_file import HeadChoice, choose_head, match_weights, read_weights_file

log = logging.getLogger(__name__)

# Backbones whose constructor takes the input size (ViTs and friends need it for their position embeddings).
_TAKES_IMG_SIZE = ("vit", "deit", "beit", "eva", "swin", "test_vit")


class MAC(nn.Module):
    """Massive Attribute Classifier: features from any timm backbone, independent sigmoid per attribute."""

    def __init__(self, backbone: nn.Module, num_attributes: int, drop_rate: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(drop_rate)
        self.head = nn.Linear(backbone.num_features, num_attributes)
        self.head_choice: HeadChoice | None = None  # set when the weights came from a facemac checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(x)))


def check_timm_name(name: str) -> str:
    """``name`` if timm knows it (with or without a pretrained tag), else a ConfigError listing close names."""
    if name not in timm.list_models() and name not in timm.list_models(pretrained=True):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        raise ConfigError(f"model.timm_name={name!r} is not a timm model; close names: {', '.join(close) or 'none'}")
    return name


def _backbone_kwargs(model_cfg: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(model_cfg.get("kwargs") or {})
    if model_cfg.get("drop_path_rate"):
        kwargs["drop_path_rate"] = float(model_cfg["drop_path_rate"])
    if model_cfg.get("img_size") and str(model_cfg["timm_name"]).startswith(_TAKES_IMG_SIZE):
        kwargs["img_size"] = int(model_cfg["img_size"])
    return kwargs


def _backbone_shapes(model_cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The backbone's state-dict names and shapes, from a copy on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return timm.create_model(model_cfg["timm_name"], pretrained=False, num_classes=0,
                                 **_backbone_kwargs(model_cfg)).state_dict()


def preflight_model(model_cfg: dict[str, Any]) -> WeightSource:
    """What training checks before touching any data: a known timm name and starting weights that are on this
    machine (downloaded into the hub cache if needed and possible) and, for a ``model.weights`` file, that it fits
    the backbone (facemac.models.weights_file). Returns where the weights come from, with the match counts."""
    check_timm_name(model_cfg["timm_name"])
    source = resolve_weights(model_cfg)
    if source.kind != "file":
        return source
    weights = read_weights_file(source.file)
    match = match_weights(_backbone_shapes(model_cfg), weights, str(model_cfg["timm_name"]))
    return dataclasses.replace(source, content=weights.content, **match.record())


def create_mac(model_cfg: dict[str, Any], num_attributes: int, attributes: Sequence[str] | None = None) -> MAC:
    """Build a MAC from a plain model config (the one stored in checkpoints).

    Keys: ``timm_name``; ``pretrained`` (timm's weights through the hub cache, see facemac.models.weights);
    ``weights`` (a local file: a .pth/.bin/.safetensors state dict or a facemac checkpoint, loaded without network;
    wins over ``pretrained``); ``img_size``; ``drop_rate`` (head dropout); ``drop_path_rate``; ``kwargs`` (to timm).
    ``attributes`` (the run's, in order) lets a facemac checkpoint's head be kept when it scores the same ones
    (``MAC.head_choice`` says which and why).
    """
    name = check_timm_name(model_cfg["timm_name"])
    kwargs = _backbone_kwargs(model_cfg)
    source = resolve_weights(model_cfg, checksum=False)
    weights = None
    if source.kind == "file":  # read here, matched and handed to timm as a state dict (its filter still runs)
        weights = read_weights_file(source.file)
        match_weights(_backbone_shapes(model_cfg), weights, name)
        kwargs["pretrained_cfg_overlay"] = {"state_dict": weights.backbone}
    elif source.file:  # hub or URL weights: timm's pretrained path from the local file
        kwargs["pretrained_cfg_overlay"] = {"file": source.file}
    try:
        backbone = timm.create_model(name, pretrained=source.file is not None, num_classes=0, **kwargs)
    except RuntimeError as e:
        if weights is None:
            raise
        raise ConfigError(f"model.weights={source.file}: timm could not load it into {name}: "
                          f"{str(e).splitlines()[0]}") from e
    if weights is not None:
        backbone.pretrained_cfg.pop("state_dict", None)  # timm keeps its config: do not hold a second copy
    model = MAC(backbone, num_attributes, drop_rate=float(model_cfg.get("drop_rate", 0.0)))
    if weights is not None and weights.content == "facemac-checkpoint":
        model.head_choice, head = choose_head(weights, attributes, backbone.num_features)
        if head is not None:
            with torch.no_grad():
                model.head.weight.copy_(head[0])
                model.head.bias.copy_(head[1])
    return model


def mac_from_checkpoint(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> MAC:
    """The MAC a loaded checkpoint holds. Built without pretrained or local weights (the state has every weight, so
    nothing is downloaded or re-read, even when training started from ``model.pretrained``/``model.weights``)."""
    model_cfg = {**ckpt["model_cfg"], "pretrained": False, "weights": None}
    model = create_mac(model_cfg, len(ckpt["attributes"]))
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path}: weights do not fit {model_cfg.get('timm_name')}: "
                              f"{str(e).splitlines()[0]}") from e
    return model


def model_data_config(model: MAC, input_size: int | None = None) -> dict[str, Any]:
    """Mean/std/interpolation from timm's data config for the backbone, at the run's input size."""
    cfg = timm.data.resolve_model_data_config(model.backbone)
    size = int(input_size or cfg["input_size"][-1])
    return {
        "input_size": [3, size, size],
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": str(cfg.get("interpolation", "bilinear")),
    }
