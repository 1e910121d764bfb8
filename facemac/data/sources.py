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
        with open(self._prefix + key, "rb") as f:  # plain open: pathlib's per-call parsing costs as much as the read
            return f.read()

    def describe(self) -> str:
        return f"files under {self.root}"

    def __reduce__(self):  # picklable for DataLoader workers
        return (FileSource, (str(self.root),))
