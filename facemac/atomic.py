"""All-or-nothing writes: a temporary name beside the target, then a rename. A kill or a full disk never leaves a
half-written file (checkpoints, Parquet parts, manifests, sidecars) or folder (the demo data, decoded caches) under the
real name, and two processes never build the same folder at once."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

LOCKS = ".locks"  # <parent>/.locks/<name>.lock: one builder per folder (lock files are never deleted)


def temp_name(path: Path) -> Path:
    """``.<name>.<pid>.tmp`` beside ``path``: hidden, per process, and matched by ``.*.tmp`` clean-ups."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing; on a clean exit fsync it and rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Small text files (sidecars, manifests, failure lists) with the same all-or-nothing rename."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def build_folder_once(final: str | Path, is_current: Callable[[Path], bool], build: Callable[[Path], None],
                      what: str, lock_file: str | Path | None = None) -> bool:
    """Make ``final`` with ``build(tmp)`` unless ``is_current(final)``; True when this process built it.

    One builder at a time: a waiting RunLock on ``lock_file`` (default ``<parent>/.locks/<name>.lock``), so jobs that
    start together wait for the first one's build and reuse it. The build goes into a temporary sibling
    (``.tmp-<name>-<host>-<pid>-<random>``; those of dead processes on this host are removed first) that is renamed
    into place only when ``build`` returns; an outdated ``final`` is swapped out and deleted after the rename. A
    failed or killed build leaves ``final`` as it was.
    """
    from facemac.runlock import RunLock

    final = Path(final)
    if is_current(final):
        return False
    lock_file = Path(lock_file) if lock_file is not None else final.parent / LOCKS / f"{final.name}.lock"
    with RunLock(lock_file.parent, f"build of {what} {final.name}", lock_name=lock_file.name, wait=True):
        if is_current(final):
            log.info("%s: %s was built by another process meanwhile; reusing it", what, final)
            return False
        _remove_dead_temps(final)
        tmp = final.parent / f".tmp-{final.name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            build(tmp)
            _rename_into_place(tmp, final, is_current)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return True


def _rename_into_place(tmp: Path, final: Path, is_current: Callable[[Path], bool]) -> None:
    """tmp → final; an existing final is moved aside first and deleted once the new one is in place."""
    old = None
    if final.exists():
        old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except OSError:
        if not is_current(final):  # a file system without flock: another builder won the race with a whole copy
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_dead_temps(final: Path) -> None:
    """Delete the temporary folders of ``final`` that dead processes on this host left (a kill -9 mid-build)."""
    host = socket.gethostname()
    for tmp in final.parent.glob(f".tmp-{final.name}-{host}-*"):
        try:
            pid = int(tmp.name.removeprefix(f".tmp-{final.name}-{host}-").split("-")[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass
