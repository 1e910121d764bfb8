"""SHA-256 of files, streamed: one helper for checkpoints (resume and annotation provenance) and annotation parts."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read ``chunk`` bytes at a time (checkpoints and parts can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
