"""Which runs to compare: folders, globs, pipeline folders, multirun/Optuna sweep folders, or the newest N runs."""

from __future__ import annotations

import glob as globlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from facemac.compare.labels import label_runs as name_runs
from facemac.run_state import RunState, run_status
from facemac.runs import DONE_MARKER

log = logging.getLogger(__name__)

STAGES = ("train", "annotate", "analyze")
_FIX = {RunState.FAILED: "fix the cause and re-run it, or leave it out",
        RunState.RUNNING: "wait for it to finish, or leave it out",
        RunState.KILLED: "resume it into the same folder, or leave it out"}
_EVIDENCE = {"train": "metrics.json", "annotate": "annotation_summary.csv", "analyze": "kl_pairs.csv"}


@dataclass
class Run:
    """One finished stage run."""

    path: Path
    stage: str
    config: dict[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass
class Problem:
    """A folder given to compare that could not be compared, and why (said in the log and comparison.md)."""

    path: str
    reason: str
    state: str | None = None  # failed | running | killed for a run folder that did not finish (facemac.run_state)


def run_stage(folder: Path) -> str | None:
    """train / annotate / analyze, from the run's own config (``task_name``) or, without one, from its outputs."""
    cfg = folder / ".hydra" / "config.yaml"
    if cfg.is_file():
        try:
            task = OmegaConf.load(cfg).get("task_name")
        except Exception:  # noqa: BLE001 - an unreadable config: fall back to the outputs
            task = None
        if task in STAGES:
            return str(task)
    for stage, evidence in _EVIDENCE.items():
        if (folder / evidence).exists():
            return stage
    return None


def _config(folder: Path) -> dict[str, Any]:
    path = folder / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # type: ignore[return-value]
    except Exception as e:  # noqa: BLE001
        log.warning("%s: unreadable (%s); its config is left out of the comparison", path, e)
        return {}


def _job_dirs(sweep: Path) -> list[Path]:
    """The job folders of a multirun / Optuna sweep folder, in job order."""
    jobs = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def expand(entry: str | Path) -> tuple[list[Path], list[Problem]]:
    """One ``runs`` entry → candidate run folders (a glob, a pipeline folder or a sweep folder expands)."""
    text = str(entry)
    if any(c in text for c in "*?["):
        matches = sorted(globlib.glob(str(Path(text).expanduser())))
        if not matches:
            return [], [Problem(text, "the pattern matches nothing")]
        return expand_all(matches)
    path = Path(text).expanduser()
    if not path.exists():
        return [], [Problem(text, "does not exist")]
    if not path.is_dir():
        return [], [Problem(text, "is a file, not a run folder")]
    if (path / "multirun.yaml").is_file():  # a Hydra multirun or Optuna sweep: its jobs
        return _job_dirs(path), []
    if (path / "pipeline.json").is_file():  # a facemac.pipeline experiment folder: its stage runs
        return [path / s for s in STAGES if (path / s).is_dir()], []
    return [path], []


def expand_all(entries: list[str]) -> tuple[list[Path], list[Problem]]:
    """Every entry expanded, candidates and problems in the order given."""
    found: list[Path] = []
    problems: list[Problem] = []
    for entry in entries:
        f, p = expand(entry)
        found += f
        problems += p
    return found, problems


def check(folder: Path) -> Run | Problem:
    """A finished run of a stage, or why not."""
    stage = run_stage(folder)
    if stage is None:
        return Problem(str(folder), "not a run folder of train, annotate or analyze (no .hydra/config.yaml with "
                                    "their task_name, no metrics.json, annotation_summary.csv or kl_pairs.csv)")
    status = run_status(folder)
    if status.state is not RunState.FINISHED:
        return Problem(str(folder), f"{stage} run has not finished: {status.describe()}; {_FIX[status.state]}",
                       state=status.state.value)
    if not (folder / _EVIDENCE[stage]).exists():
        return Problem(str(folder), f"{stage} run is marked {DONE_MARKER} but lacks {_EVIDENCE[stage]}")
    return Run(path=folder, stage=stage, config=_config(folder))


def latest_runs(log_dir: str | Path, n: int, stage: str | None = None) -> list[Path]:
    """The ``n`` newest finished stage runs under the outputs folder (oldest first)."""
    base = Path(log_dir).expanduser()
    found = []
    for done in base.glob(f"**/{DONE_MARKER}"):
        folder = done.parent
        s = run_stage(folder)
        if s is not None and (stage is None or s == stage):
            found.append((done.stat().st_mtime, folder))
    return [f for _, f in sorted(found)[-n:]] if n > 0 else []


def label_runs(runs: list[Run]) -> None:
    """Names that say how the runs differ (facemac.compare.labels), path tails where the configs do not."""
    name_runs(runs)


def collect(entries: list[str], latest: int | None, log_dir: str | Path,
            stage: str | None = None) -> tuple[list[Run], list[Problem]]:
    """Every run to compare (deduplicated, in the order given, then the newest ones) and every problem met."""
    candidates, problems = expand_all(entries)
    if latest:
        candidates += latest_runs(log_dir, int(latest), stage)
    runs: list[Run] = []
    seen: set[Path] = set()
    for folder in candidates:
        key = folder.resolve()
        if key in seen:
            continue
        seen.add(key)
        got = check(folder)
        if isinstance(got, Problem):
            problems.append(got)
        elif stage is None or got.stage == stage:
            runs.append(got)
    for p in problems:
        log.warning("not compared: %s: %s", p.path, p.reason)
    label_runs(runs)
    return runs, problems
