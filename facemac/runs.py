"""Finding a previous stage's output: explicit path, ``latest`` = the newest finished run under the outputs folder, or
a W&B artifact reference (one rule for every stage's inputs: ``artifact_reference``)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from facemac.errors import ConfigError
from facemac.run_state import DONE_MARKER, mark_done, run_status  # noqa: F401 - DONE_MARKER, mark_done: re-exported
from facemac.runlock import LOCK_NAME

log = logging.getLogger(__name__)

WANDB_PREFIX = "wandb:"  # an explicit W&B reference: wandb:<entity/project/name:alias>
# [entity/[project/]]name:alias — W&B's artifact names and aliases take letters, digits, '-', '_' and '.'
_ARTIFACT_REF = re.compile(r"(?:[\w.\-]+/){0,2}[\w.\-]+:[\w.\-]+")
_FILE_ENDINGS = (".pt", ".pth", ".parquet", ".csv", ".json", ".txt")  # "x:best.pt" is a file name, not an alias


def artifact_reference(ref: str) -> str | None:
    """The W&B artifact ``ref`` names, or None when it is not one (callers try local paths first).

    ``wandb:<ref>`` always is (prefix dropped); otherwise ``[entity/[project/]]name:alias`` with an alias or version
    (``best``, ``v3``) after the colon and at most two slashes, so a local path with a colon is not mistaken for one.
    """
    ref = str(ref).strip()
    if ref.startswith(WANDB_PREFIX):
        return ref.removeprefix(WANDB_PREFIX) or None
    if _ARTIFACT_REF.fullmatch(ref) and not ref.endswith(_FILE_ENDINGS):
        return ref
    return None


def latest_run(log_dir: str | Path, task_name: str, must_contain: str) -> Path:
    """Newest finished run of ``task_name`` under ``log_dir`` (runs and multirun jobs) that holds ``must_contain``;
    newer runs that failed, were killed or still run are skipped, and one log line says which and why."""
    base = Path(log_dir).expanduser() / task_name
    candidates = [p.parent for p in base.glob(f"**/{DONE_MARKER}") if (p.parent / must_contain).exists()]
    newest = max(candidates, key=lambda p: (p / DONE_MARKER).stat().st_mtime) if candidates else None
    skipped = _unfinished_since(base, None if newest is None else _started(newest))
    if newest is None:
        why = f" ({_describe_skipped(skipped, newer=False)})" if skipped else ""
        raise ConfigError(f"`latest` found no finished {task_name} run with {must_contain} under {base}{why}; "
                          f"run `python {task_name}.py` first or pass an explicit path")
    if skipped:
        log.info("`latest` %s run: %s, skipping %s", task_name, newest, _describe_skipped(skipped))
    return newest


def _started(run: Path) -> float:
    """When a run took its lock (its start), else when it finished."""
    lock = run / LOCK_NAME
    return (lock if lock.exists() else run / DONE_MARKER).stat().st_mtime


def _unfinished_since(base: Path, since: float | None) -> list:
    """Run folders under ``base`` without DONE whose run lock was taken after ``since`` (all when None), newest
    first, with their state (facemac.run_state)."""
    found = []
    for lock in base.glob(f"**/{LOCK_NAME}"):
        folder = lock.parent
        if (folder / DONE_MARKER).exists():
            continue
        stamp = lock.stat().st_mtime
        if since is None or stamp > since:
            found.append((stamp, run_status(folder)))
    return [s for _, s in sorted(found, key=lambda t: t[0], reverse=True)]


def _describe_skipped(statuses: list, newer: bool = True) -> str:
    """``2 newer runs not finished: <path> failed (DataError: ...); ...`` (at most three named)."""
    named = "; ".join(f"{s.path} {s.describe()}" for s in statuses[:3])
    more = f"; and {len(statuses) - 3} more" if len(statuses) > 3 else ""
    what = f"{len(statuses)}{' newer' if newer else ''} run{'s' if len(statuses) > 1 else ''}"
    return f"{what} not finished: {named}{more}"
