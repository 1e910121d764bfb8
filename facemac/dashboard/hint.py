"""What to run after a pipeline or a sweep: ``wandb sync`` in stage order, the dashboard, the comparison.

Imports nothing heavy: the pipeline and a Hydra callback use it at the end of every run.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("facemac.dashboard")

STAGES = ("train", "annotate", "analyze")


def dashboard_command(group: str | None, experiment: str | None = None) -> str:
    """``python -m facemac.dashboard group=<group> [experiment=<name>]``."""
    parts = ["python", "-m", "facemac.dashboard"]
    if group:
        parts.append(f"group={group}")
    if experiment and experiment != "default":
        parts.append(f"experiment={experiment}")  # its targets name the per-dataset panels
    return shlex.join(parts)


def compare_command(*folders: str | Path) -> str:
    return shlex.join(["python", "-m", "facemac.compare", f"runs=[{','.join(str(f) for f in folders)}]"])


def offline_run_dirs(folder: Path) -> list[Path]:
    """The offline W&B runs under a run folder, not yet synced (``wandb sync`` leaves a ``.wandb.synced`` marker)."""
    return sorted(p for p in folder.glob("wandb/offline-run-*") if p.is_dir() and not any(p.glob("*.wandb.synced")))


def sync_commands(stage_dirs: list[Path]) -> list[str]:
    """One ``wandb sync`` per stage, in pipeline order: a stage's declared inputs resolve to the versions its
    producer logged only when the producer's run is synced first."""
    return [shlex.join(["wandb", "sync", *map(str, runs)]) for runs in map(offline_run_dirs, stage_dirs) if runs]


def next_steps(root: Path, group: str | None, experiment: str | None) -> str:
    """The lines a finished pipeline prints."""
    lines = []
    syncs = sync_commands([root / s for s in STAGES])
    if syncs:
        lines += ["upload the offline W&B runs in this order (lineage resolves producer first):", *syncs]
    lines += ["W&B workspace and report for this experiment: " + dashboard_command(group, experiment),
              "compare with other runs, no W&B needed: " + compare_command(root, "<another pipeline folder>")]
    return "\n  ".join(["next:", *lines])


def _select(config: DictConfig, key: str) -> Any:
    """A key of the sweep's config; ``${hydra:...}`` interpolations (the Optuna group) need HydraConfig, which is
    only set inside jobs, so it is set from this config when the first try needs it."""
    try:
        return OmegaConf.select(config, key, default=None)
    except Exception:  # noqa: BLE001 - InterpolationResolutionError: HydraConfig was not set
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)
        return OmegaConf.select(config, key, default=None)


class SweepHints(Callback):
    """At the end of a multirun (a sweep, an Optuna study): the dashboard command for its W&B group and the
    comparison command for its folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            lines = [f"compare the jobs: {compare_command(str(_select(config, 'hydra.sweep.dir')))}"]
        except Exception as e:  # noqa: BLE001 - a hint must never fail a finished sweep
            log.debug("no sweep hints: %r", e)
            return
        try:
            tracked = _select(config, "logger.backend") not in (None, "none")
            group = _select(config, "logger.group") if tracked else None
            experiment = _select(config, "hydra.runtime.choices.experiment")
            if group:
                lines.append(f"W&B dashboard for group {group}: {dashboard_command(str(group), experiment)}")
        except Exception as e:  # noqa: BLE001
            log.debug("no dashboard hint: %r", e)
        log.info("\n  ".join(["sweep done:", *lines]))
