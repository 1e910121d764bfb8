"""Optional stacks are pip extras; asking for a feature whose extra is not installed is one ``error:`` line naming it.

    pip install 'facemac[sweeps]'          Optuna sweeps (hparams_search=optuna)
    pip install 'facemac[slurm]'           submitit launchers (launcher=slurm, launcher=local)
    pip install 'facemac[dashboard]'       the W&B workspace and report (python -m facemac.dashboard)
    pip install 'facemac[albumentations]'  augment.backend=albumentations (and hue jitter, which the fast backend lacks)

The ``test`` extra pulls all four, so ``pip install -e ".[test]"`` installs everything the tests and the demo need.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from facemac.errors import FacemacError


class MissingExtraError(FacemacError):
    """A feature was asked for whose optional dependencies (a pip extra of facemac) are not installed."""


@dataclass(frozen=True)
class Extra:
    """One pip extra: its name and the top-level modules its packages provide."""

    name: str
    modules: tuple[str, ...]

    def missing(self) -> list[str]:
        """The modules of this extra that cannot be imported here."""
        return [m for m in self.modules if not _importable(m)]


SWEEPS = Extra("sweeps", ("hydra_plugins.hydra_optuna_sweeper", "optuna", "sqlalchemy", "alembic"))
SLURM = Extra("slurm", ("hydra_plugins.hydra_submitit_launcher", "submitit"))
DASHBOARD = Extra("dashboard", ("wandb_workspaces",))
ALBUMENTATIONS = Extra("albumentations", ("albumentations",))
EXTRAS = (SWEEPS, SLURM, DASHBOARD, ALBUMENTATIONS)

# Hydra plugins a config may switch to (``override /hydra/<group>: <choice>``), and the extra that brings each
HYDRA_PLUGINS = {"hydra/sweeper/optuna": SWEEPS, "hydra/launcher/submitit_slurm": SLURM,
                 "hydra/launcher/submitit_local": SLURM}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def require(extra: Extra, feature: str) -> None:
    """Raise MissingExtraError naming the extra when any of its modules is missing."""
    missing = extra.missing()
    if missing:
        raise MissingExtraError(f"{feature} needs facemac's [{extra.name}] extra ({', '.join(missing)} not installed): "
                                f"pip install 'facemac[{extra.name}]' (in a checkout: pip install -e '.[{extra.name}]')")


def _plugin_choices(group: str, choice: str, conf: Path) -> list[str]:
    """The Hydra plugins a group choice switches to: ``hydra/<group>/<choice>`` itself, or the ``override /hydra/…``
    entries in the defaults list of ``conf/<group>/<choice>.yaml``."""
    if group.startswith("hydra/"):
        return [f"{group}/{choice}"]
    path = conf / group / f"{choice}.yaml"
    if not path.is_file():
        return []  # an unknown choice: Hydra's own error lists the valid ones
    from omegaconf import OmegaConf

    try:
        defaults = OmegaConf.to_container(OmegaConf.load(path)).get("defaults") or []
    except Exception:  # noqa: BLE001 - a broken file is Hydra's to report, with its name
        return []
    found = []
    for entry in defaults:
        if isinstance(entry, dict):
            for key, value in entry.items():
                key = str(key).removeprefix("override").strip().lstrip("/")
                if key.startswith("hydra/") and isinstance(value, str):
                    found.append(f"{key}/{value}")
    return found


def check_overrides(overrides: list[str], conf: Path | None = None) -> None:
    """Refuse, before Hydra composes anything, an override that selects a Hydra plugin whose extra is missing
    (``hparams_search=optuna``, ``launcher=slurm``, ``hydra/launcher=submitit_local``, ...)."""
    if conf is None:
        from facemac.conf_dir import conf_dir

        conf = conf_dir()
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if not sep or "." in key or not value or value == "null":
            continue
        for plugin in _plugin_choices(key, value, conf):
            if plugin in HYDRA_PLUGINS:
                require(HYDRA_PLUGINS[plugin], override)
