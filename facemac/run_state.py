"""What became of a run folder: finished, failed (with its error), running, or killed.

A stage run writes ``DONE`` when its work finished (``mark_done``) and ``FAILED`` (JSON: error type, the
one-line message, time) when its body raised (``mark_failed``, called by facemac.stage.run_stage). A live process
holds the folder's ``.lock`` (facemac.runlock; the kernel drops it when the process dies, even with ``kill -9``), so
a folder with neither marker is *running* while its lock is held and *killed* (or crashed past Python) once it is
not. Ctrl-C and signals leave no marker either: such a run reads as killed, and resumes like one. Tools (compare,
``latest``, the pipeline) read the state from here, so none of them calls a dead run "still running".
"""

from __future__ import annotations

import datetime as dt
import enum
import errno
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from facemac.atomic import atomic_write
from facemac.runlock import LOCK_NAME

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: a lock cannot be probed, so no folder is ever "running"
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

DONE_MARKER = "DONE"  # written last by every stage; a run without it is unfinished and never picked as `latest`
FAILED_MARKER = "FAILED"  # written by a stage whose body raised: JSON {error, message, time, rank}


class RunState(str, enum.Enum):
    """The four states a run folder can be in (its value is the word tools print)."""

    FINISHED = "finished"
    FAILED = "failed"
    RUNNING = "running"
    KILLED = "killed"


@dataclass(frozen=True)
class Failure:
    """What ``FAILED`` records: the error's type, its one-line message, and when (UTC, ISO 8601)."""

    error: str
    message: str
    time: str
    rank: int = 0

    def describe(self) -> str:
        return f"{self.error}: {self.message}"


@dataclass(frozen=True)
class RunStatus:
    """A folder's state and, for a failed run, its failure; ``describe()`` is the phrase tools show."""

    path: Path
    state: RunState
    failure: Failure | None = None
    holder: str | None = None  # a running run's lock holder ("pid 123 on host")

    def describe(self) -> str:
        if self.state is RunState.FAILED and self.failure is not None:
            return f"failed ({self.failure.describe()}; at {self.failure.time})"
        if self.state is RunState.RUNNING:
            return f"still running ({self.holder or 'lock held'})"
        if self.state is RunState.KILLED:
            return ("killed (no DONE, no FAILED marker and no live process holds its lock: stopped by a signal, "
                    "the OOM killer or a time limit)")
        return "finished"


def mark_done(run_dir: str | Path) -> None:
    """Declare a run finished (after all its outputs exist)."""
    Path(run_dir, DONE_MARKER).write_text("ok\n")


def one_line(exc: BaseException) -> str:
    """The error's message as one line (its first), or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def mark_failed(run_dir: str | Path | None, exc: BaseException, rank: int = 0) -> None:
    """Write ``FAILED`` for a stage body that raised; never hides the original error (a failed write is logged)."""
    if run_dir is None:
        return  # failed before the run folder was known: nothing to mark
    record = {"error": type(exc).__name__, "message": one_line(exc), "rank": int(rank),
              "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_write(path / FAILED_MARKER, "w") as f:
            f.write(json.dumps(record, indent=2) + "\n")
    except OSError as e:  # the stage's own error matters more than its marker
        log.warning("could not write %s in %s (%s)", FAILED_MARKER, run_dir, e)


def clear_failed(run_dir: str | Path) -> None:
    """A run started again in the same folder (a resume) is no longer the failed one."""
    try:
        Path(run_dir, FAILED_MARKER).unlink()
    except FileNotFoundError:
        pass


def read_failure(run_dir: str | Path) -> Failure | None:
    """The folder's ``FAILED`` record, or None; an unreadable one still says the run failed."""
    path = Path(run_dir, FAILED_MARKER)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        return Failure(error=str(doc.get("error", "error")), message=str(doc.get("message", "")),
                       time=str(doc.get("time", "")), rank=int(doc.get("rank", 0)))
    except (OSError, ValueError, AttributeError):
        return Failure(error="error", message=f"{path} is unreadable", time="")


def lock_holder(run_dir: str | Path) -> str | None:
    """Who holds the folder's run lock ("pid N on host"), or None when no live process does (a non-blocking probe:
    the lock is taken and dropped at once when it is free)."""
    path = Path(run_dir, LOCK_NAME)
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            return None  # a file system that cannot lock: nothing to tell
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def run_status(run_dir: str | Path) -> RunStatus:
    """DONE → finished; a live lock holder → running (a resume of a failed run included); FAILED → failed;
    none of these → killed."""
    path = Path(run_dir)
    if (path / DONE_MARKER).exists():
        return RunStatus(path, RunState.FINISHED)
    holder = lock_holder(path)
    if holder is not None:
        return RunStatus(path, RunState.RUNNING, holder=holder)
    failure = read_failure(path)
    if failure is not None:
        return RunStatus(path, RunState.FAILED, failure=failure)
    return RunStatus(path, RunState.KILLED)


__all__ = ["RunState", "RunStatus", "Failure", "DONE_MARKER", "FAILED_MARKER", "mark_done", "mark_failed",
           "clear_failed", "read_failure", "lock_holder", "run_status", "one_line"]
