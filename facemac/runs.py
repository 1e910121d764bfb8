"""Finding a previous stage's output: explicit path, or ``latest`` = the newest finished run under the outputs folder."""

from __future__ import annotations

import logging
from pathlib import Path

from facemac.errors import ConfigError

log = logging.getLogger(__name__)

DONE_MARKER = "DONE"  # written last by every stage; a run without it is unfinished and never picked as `latest`


def mark_done(run_dir: str | Path) -> None:
    """Declare a run finished (after all its outputs exist)."""
    Path(run_dir, DONE_MARKER).write_text("ok\n")


def latest_run(log_dir: str | Path, task_name: str, must_contain: str) -> Path:
    """Newest finished run of ``task_name`` under ``log_dir`` (runs and multirun jobs) that holds ``must_contain``."""
    base = Path(log_dir).expanduser() / task_name
    candidates = [p.parent for p in base.glob(f"**/{DONE_MARKER}") if (p.parent / must_contain).exists()]
    if not candidates:
        raise ConfigError(f"`latest` found no finished {task_name} run with {must_contain} under {base}; "
                          f"run `python {task_name}.py` first or pass an explicit path")
    newest = max(candidates, key=lambda p: (p / DONE_MARKER).stat().st_mtime)
    return newest
