"""A ``model.weights`` file, read and matched against the backbone before anything trains on it.

A weights file is either a plain state dict (timm's own names: ``torch.save(model.state_dict())``, a hub
``model.safetensors``, a ``{"state_dict": ...}`` / ``{"model": ...}`` training checkpoint) or a facemac checkpoint
(``best.pt``/``last.pt``: its ``backbone.*`` tensors are the backbone, its ``head.*`` the attribute head). timm loads
pretrained weights with ``strict=False`` once its classifier is dropped, so a file whose names do not fit loads
nothing and says so only in a log line: a run from random weights recorded as started from that file. Here the file's
tensors are counted against the model's first (same name and shape), and a file that matches too few is refused with
the counts.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from facemac.checkpoint import FORMAT as CHECKPOINT_FORMAT
from facemac.errors import ConfigError

# A file must cover this share of the model's tensors, and this share of its own backbone tensors must be used: below
# it the file holds another architecture (resnet50 into resnet18, a deeper resnet34 into resnet18, a MAC of another
# backbone), and training would start mostly from random weights. A ViT at another input size passes: only its
# position embedding differs in shape, and timm's checkpoint filter resamples it.
MIN_MATCHED_SHARE = 0.9
_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")  # timm's load_state_dict order
_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


@dataclass(frozen=True)
class HeadWeights:
    """A facemac checkpoint's attribute head: one row per attribute, in ``attributes`` order."""

    attributes: list[str]
    weight: torch.Tensor
    bias: torch.Tensor


@dataclass(frozen=True)
class WeightsFile:
    """What a ``model.weights`` file holds for the backbone (and, from a facemac checkpoint, for the head)."""

    path: Path
    content: str  # "state_dict" | "facemac-checkpoint"
    backbone: dict[str, torch.Tensor]
    head: HeadWeights | None = None
    timm_name: str | None = None  # a facemac checkpoint's backbone ...
    model_name: str | None = None  # ... and its conf/model choice (demo_tiny, resnet18, ...)

    def describe(self) -> str:
        if self.content == "facemac-checkpoint":
            return (f"a facemac checkpoint of a {self.timm_name} MAC with "
                    f"{len(self.head.attributes) if self.head else 0} attributes")
        return "a state dict"


@dataclass(frozen=True)
class WeightsMatch:
    """How a file's tensors fit a model: matched = same name and shape."""

    matched: int
    model_tensors: int
    file_tensors: int
    reshaped: tuple[str, ...] = ()  # same name, another shape (a ViT's position embedding at another size)
    missing: tuple[str, ...] = ()  # model tensors the file lacks (they keep their random initialisation)

    def record(self) -> dict[str, int]:
        return {"matched": self.matched, "model_tensors": self.model_tensors, "file_tensors": self.file_tensors}

    def describe(self) -> str:
        return f"{self.matched} of the model's {self.model_tensors} tensors matched (the file holds {self.file_tensors})"


@dataclass(frozen=True)
class HeadChoice:
    """Whether a MAC started from a facemac checkpoint kept its head, and why (logged and recorded)."""

    kept: bool
    reason: str

    def record(self) -> str:
        return "kept" if self.kept else "new"


def _load_raw(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for damaged files
            raise ConfigError(f"model.weights={path}: not a readable .safetensors file ({e})") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ConfigError(f"model.weights={path}: holds objects other than tensors and plain values (refused: loading "
                          f"it could run code); save the model's state_dict() alone: {str(e).splitlines()[0]}") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise ConfigError(f"model.weights={path}: unreadable or truncated ({str(e).splitlines()[0]})") from e


def _strip(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue
        for prefix in _PREFIXES:
            k = k.removeprefix(prefix)
        out[k] = v
    return out


def read_weights_file(path: str | Path) -> WeightsFile:
    """The backbone tensors of a weights file (and a facemac checkpoint's head); ConfigError for what is neither."""
    path = Path(path)
    raw = _load_raw(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"model.weights={path}: holds a {type(raw).__name__}, not a state dict")
    if raw.get("format") == CHECKPOINT_FORMAT and isinstance(raw.get("model_state"), Mapping):
        state = _strip(raw["model_state"])
        backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        head = None
        attributes = raw.get("attributes")
        if "head.weight" in state and "head.bias" in state and isinstance(attributes, list):
            head = HeadWeights([str(a) for a in attributes], state["head.weight"], state["head.bias"])
        model_cfg = raw.get("model_cfg") if isinstance(raw.get("model_cfg"), Mapping) else {}
        return WeightsFile(path, "facemac-checkpoint", backbone, head, str(model_cfg.get("timm_name") or "unknown"),
                           str(model_cfg["name"]) if model_cfg.get("name") else None)
    for key in _WRAPPER_KEYS:
        if isinstance(raw.get(key), Mapping):
            raw = raw[key]
            break
    state = _strip(raw)
    if state and all(k.startswith("backbone.") or k.startswith("head.") for k in state):  # a bare MAC state dict
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    if not state:
        raise ConfigError(f"model.weights={path}: holds no tensors (expected a state dict of the backbone or a "
                          "facemac checkpoint)")
    return WeightsFile(path, "state_dict", state)


def match_weights(model_state: Mapping[str, torch.Tensor], weights: WeightsFile, timm_name: str) -> WeightsMatch:
    """Count ``weights``' backbone tensors against ``model_state`` (a meta-device copy is enough: only names and
    shapes are read); ConfigError with the counts when the file matches too few, or uses too little of itself."""
    file_state = weights.backbone
    matched = [k for k, v in model_state.items() if k in file_state and tuple(file_state[k].shape) == tuple(v.shape)]
    reshaped = tuple(k for k, v in model_state.items()
                     if k in file_state and tuple(file_state[k].shape) != tuple(v.shape))
    missing = tuple(k for k in model_state if k not in file_state)
    match = WeightsMatch(len(matched), len(model_state), len(file_state), reshaped, missing)
    enough_of_model = match.matched >= MIN_MATCHED_SHARE * match.model_tensors
    enough_of_file = match.matched >= MIN_MATCHED_SHARE * match.file_tensors
    if enough_of_model and enough_of_file:
        return match
    what = weights.describe()
    choice = f"model={weights.model_name}" if weights.model_name else f"model.timm_name={weights.timm_name}"
    hint = (f"; it holds a {weights.timm_name} backbone: train with {choice} as the run that wrote it did, or give "
            f"a {timm_name} file"
            if weights.timm_name and weights.timm_name != timm_name else
            f"; give a {timm_name} state dict in timm's names (torch.save(timm.create_model('{timm_name}')"
            ".state_dict(), f)) or a facemac checkpoint of one")
    example = (f"the model lacks e.g. {next(k for k in file_state if k not in model_state)!r}"
               if not enough_of_file and any(k not in model_state for k in file_state) else
               f"e.g. {missing[0]!r} is not in the file" if missing else
               f"e.g. {reshaped[0]!r} has shape {tuple(file_state[reshaped[0]].shape)} in the file, "
               f"{tuple(model_state[reshaped[0]].shape)} in the model" if reshaped else "")
    raise ConfigError(f"model.weights={weights.path} ({what}) does not fit {timm_name}: {match.matched} of the "
                      f"model's {match.model_tensors} tensors matched by name and shape, the file holds "
                      f"{match.file_tensors} ({example}; at least {MIN_MATCHED_SHARE:.0%} of both must match){hint}")


def choose_head(weights: WeightsFile, attributes: Sequence[str] | None, num_features: int) -> tuple[
        HeadChoice, tuple[torch.Tensor, torch.Tensor] | None]:
    """Keep a facemac checkpoint's head when it scores the same attributes (rows reordered to ``attributes``);
    otherwise a new head, and say why."""
    head = weights.head
    if head is None:
        return HeadChoice(False, "the file has no attribute head"), None
    if attributes is None:
        return HeadChoice(False, "the run's attributes are unknown here"), None
    if sorted(head.attributes) != sorted(attributes) or len(set(attributes)) != len(attributes):
        only_ckpt = [a for a in head.attributes if a not in attributes]
        only_run = [a for a in attributes if a not in head.attributes]
        return HeadChoice(False, f"the checkpoint's {len(head.attributes)} attributes differ from this dataset's "
                                 f"{len(attributes)} (only in the checkpoint: {only_ckpt[:5]}; only in the dataset: "
                                 f"{only_run[:5]})"), None
    if head.weight.shape != (len(attributes), num_features):
        return HeadChoice(False, f"its head has shape {tuple(head.weight.shape)}, the model needs "
                                 f"{(len(attributes), num_features)}"), None
    order = [head.attributes.index(a) for a in attributes]
    return (HeadChoice(True, f"the same {len(attributes)} attributes"),
            (head.weight[order].clone(), head.bias[order].clone()))
