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


class SweepHints(Callback):
    """At the end of a multirun (a sweep, an Optuna study): the dashboard command for its W&B group and the
    comparison command for its folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            sweep_dir = str(config.hydra.sweep.dir)
            tracked = OmegaConf.select(config, "logger.backend", default="none") != "none"
            group = OmegaConf.select(config, "logger.group", default=None) if tracked else None
            experiment = OmegaConf.select(config, "hydra.runtime.choices.experiment", default=None)
        except Exception as e:  # noqa: BLE001 - a hint must never fail a finished sweep
            log.debug("no sweep hints: %s", e)
            return
        lines = [f"compare the jobs: {compare_command(sweep_dir)}"]
        if group:
            lines.append(f"W&B dashboard for group {group}: {dashboard_command(str(group), experiment)}")
        log.info("\n  ".join(["sweep done:", *lines]))
