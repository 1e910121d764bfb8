"""Config values (DictConfig nodes or settings sections) as plain Python: checkpoints, W&B and readers never hold
(or pickle) OmegaConf objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


def to_plain(cfg: Any) -> Any:
    """A resolved plain copy of a config node (dicts and lists); ``???`` stays the string, so it can be reported by
    key; anything that is not a config node is returned as is (a Mapping as a dict)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    from facemac.settings.base import Section

    if isinstance(cfg, Section):  # a settings section (facemac/settings/)
        return cfg.plain()
    if isinstance(cfg, Mapping):
        return dict(cfg)
    return cfg
