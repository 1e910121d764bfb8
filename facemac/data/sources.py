"""Where encoded image bytes come from: plain files under a root (packed formats add their own sources)."""

from __future__ import annotations

import os
from pathlib import Path


class FileSource:
    """Images stored as files; keys are paths relative to ``root`` with forward slashes."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._prefix = os.path.join(str(self.root), "")

    def read(self, key: str) -> bytes:
        """The file's bytes in one read() sized by fstat: 5.7 µs per 4 KB face where open().read() took 10 (its
        buffered reader and size probing), and pathlib's per-call parsing would cost as much again."""
        fd = os.open(self._prefix + key, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            data = os.read(fd, size + 1)  # one byte more than fstat said: a file that grew is noticed
            if len(data) == size:
                return data
            chunks = [data]  # a short read (network file systems, signals) or a growing file: read to the end
            while chunk := os.read(fd, max(size, 1 << 16)):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def describe(self) -> str:
        return f"files under {self.root}"

    def __reduce__(self):  # picklable for DataLoader workers
        return (FileSource, (str(self.root),))
