"""All-or-nothing file writes: a temporary name beside the target, fsync, rename. A kill or a full disk never leaves
a half-written file under the real name (checkpoints, Parquet parts, manifests, sidecars)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


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
