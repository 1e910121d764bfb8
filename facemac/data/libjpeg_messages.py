"""libjpeg's warnings, caught instead of printed: OpenCV's bundled libjpeg writes "Corrupt JPEG data: …" straight to
file descriptor 2, between log lines and progress bars, for files facemac already lists in failures.csv.

Only the OpenCV fallback decode (JPEGs simplejpeg cannot take, e.g. an unusual subsampling or a damaged frame header)
prints them; around it, fd 2 is pointed at a temporary file under a lock, the messages are read back (and make the
fallback as strict as simplejpeg's strict mode: a JPEG whose data libjpeg calls corrupt is refused), and anything else
written to fd 2 meanwhile (another thread's log line or progress bar) is passed on to the real stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

# libjpeg's warning texts (jerror.h JWRN_*), the lines it prints and carries on after
LIBJPEG_PREFIXES = ("Corrupt JPEG data", "Premature end of JPEG file", "Invalid SOS parameters",
                    "Inconsistent progression sequence", "Warning: unknown JFIF revision", "Warning: thumbnail image")
_LOCK = threading.Lock()


class Caught:
    """The libjpeg lines written while a block ran."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def first(self, prefixes: tuple[str, ...] = LIBJPEG_PREFIXES) -> str | None:
        return next((line for line in self.lines if line.startswith(prefixes)), None)


@contextlib.contextmanager
def catch_libjpeg_messages() -> Iterator[Caught]:
    """Run a block with fd 2 captured; libjpeg's lines land in the yielded ``Caught``, the rest on the real stderr."""
    caught = Caught()
    with _LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield caught
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
        other = []
        for line in text.splitlines(keepends=True):
            (caught.lines.append(line.strip()) if line.startswith(LIBJPEG_PREFIXES) else other.append(line))
        if other:
            os.write(2, "".join(other).encode("utf-8", "replace"))
