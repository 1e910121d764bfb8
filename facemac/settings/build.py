"""Build a command's settings once, from the composed config: the only place a DictConfig becomes typed settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from pydantic import ValidationError

from facemac.errors import ConfigError
from facemac.settings.errors import config_error, unknown_key
from facemac.settings.runs import SCHEMAS, STAGES, RunSettings


def own_keys(command: str) -> tuple[str, ...]:
    """The top-level keys ``command``'s schema has."""
    return tuple(f.alias or n for n, f in SCHEMAS[command].model_fields.items())


def common_keys() -> tuple[str, ...]:
    """Keys every stage has (``seed``, ``paths``, ``logger``, ...)."""
    return RunSettings.common


def stage_keys() -> dict[str, tuple[str, ...]]:
    """Each stage's own top-level keys (the common ones left out), from the schemas."""
    return {s: tuple(k for k in own_keys(s) if k not in RunSettings.common) for s in STAGES}


def owner_of(key: str) -> tuple[str, ...]:
    """The stages an override's top-level key or group belongs to (all three for common keys); () if none."""
    top = key.lstrip("+~").split("=", 1)[0].split("@", 1)[0].split(".", 1)[0].split("/", 1)[0]
    return tuple(s for s in STAGES if top in own_keys(s) or top in SCHEMAS[s].groups)


def plain_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The composed config as resolved plain values, without Hydra's own node."""
    if isinstance(cfg, DictConfig):
        from hydra.core.hydra_config import HydraConfig

        unset = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False) is None
        if not HydraConfig.initialized() and unset and "paths" in cfg:  # composed outside a run (pipeline): no folder
            cfg = cfg.copy()
            with open_dict(cfg):
                cfg.paths.output_dir = "."
        try:
            data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        except Exception as e:  # noqa: BLE001 - an interpolation that cannot resolve names its key
            raise ConfigError(f"config value cannot be resolved: {e}".splitlines()[0]) from None
    else:
        data = dict(cfg)
    data.pop("hydra", None)
    return data  # type: ignore[return-value]


def build_settings(cfg: DictConfig | Mapping[str, Any] | RunSettings, command: str) -> RunSettings:
    """The typed settings of ``command`` (train, annotate, analyze, compare, dashboard) from its composed config.

    Keys of another stage (an experiment sets all three from one file) are dropped; a key no stage has, a bad choice
    or a value out of range is a ConfigError naming the key (and, for an unknown key, the closest valid one)."""
    if isinstance(cfg, RunSettings):
        return cfg
    schema = SCHEMAS[command]
    data = plain_config(cfg)
    mine = set(own_keys(command))
    known = mine | {k for s in SCHEMAS for k in own_keys(s)}
    for key in data:
        if key not in known:
            raise ConfigError(unknown_key(key, sorted(mine)))
    own = {k: v for k, v in data.items() if k in mine}
    try:
        return schema.model_validate(own)
    except ValidationError as e:
        raise config_error(e, schema) from None
