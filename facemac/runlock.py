"""One writer per output folder: an advisory ``flock`` that the kernel drops when its process dies (no stale locks).

Two runs pointed at the same folder (the same ``hydra.run.dir``) would interleave parts and manifests; the second one
is refused with a message naming the folder and the holder's pid. The lock file itself is never deleted (deleting it
would let a third process lock a fresh inode while the second still holds the old one); only the lock matters, and a
process killed with ``kill -9`` releases it with its file descriptors. Forked children (DataLoader workers) close
their inherited copy at once: a flock lives as long as any descriptor to it, so a worker that outlives a killed parent
by a few seconds would otherwise keep an immediate resume out.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from pathlib import Path

from facemac.errors import RunLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking, one log line says so
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_HELD: set[int] = set()  # descriptors of the locks this process holds


def _close_in_child() -> None:
    """After fork: drop the child's copies (closing a copy never unlocks; only the last close or LOCK_UN does)."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


# flock's answers when another descriptor holds the lock; anything else means the file system cannot lock
_HELD_ELSEWHERE = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


class RunLock:
    """``with RunLock(folder, "annotate"):`` holds ``<folder>/.lock`` exclusively, or raises RunLockedError;
    ``wait=True`` queues behind the holder instead (shared caches: one process builds, the others then reuse)."""

    def __init__(self, folder: str | Path, what: str = "run", hint: str = "choose another hydra.run.dir",
                 lock_name: str = LOCK_NAME, wait: bool = False):
        self.path = Path(folder) / lock_name
        self.what = what
        self.hint = hint
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        """Take the lock (without waiting unless ``wait``): a folder held by a live process is refused with its pid
        and host. A file system without flock (some Lustre/NFS mounts) is used unprotected, with a warning."""
        if fcntl is None:
            log.warning("no fcntl on this platform: %s is not protected against a second writer", self.path.parent)
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in _HELD_ELSEWHERE:
                os.close(fd)
                log.warning("%s: this file system cannot lock (flock: %s); %s is not protected against a second "
                            "writer", self.path, e.strerror, self.path.parent)
                return self
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            if not self.wait:
                os.close(fd)
                raise RunLockedError(f"another {self.what} ({holder}) is writing into {self.path.parent}; wait for "
                                     f"it to finish or {self.hint}. The lock is released when that process exits, "
                                     "even if it is killed.") from None
            log.info("waiting for another %s (%s) to finish with %s", self.what, holder, self.path.parent)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd
        _HELD.add(fd)
        return self

    def release(self) -> None:
        """Drop the lock (idempotent); the file stays, empty of meaning once unlocked."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _HELD.discard(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
