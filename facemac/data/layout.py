"""Checks every reader shares, so a wrong path fails at once with the file and the layout that was expected."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from facemac.errors import ConfigError, DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def require_dir(path: str | Path, layout: str) -> Path:
    """The folder ``path`` must exist; otherwise a DataError naming it and the layout expected inside it."""
    p = Path(path).expanduser()
    if not p.is_dir():
        what = "is not a folder" if p.exists() else "does not exist"
        raise DataError(f"{p} {what}; expected {layout}")
    return p


def require_file(path: str | Path, layout: str) -> Path:
    """The file ``path`` must exist; otherwise a DataError naming it and what it should contain."""
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is not a file" if p.exists() else "does not exist"
        raise DataError(f"{p} {what}; expected {layout}")
    return p


def select_attributes(available: Sequence[str], wanted: Sequence[str] | None, source: str,
                      key: str = "dataset.attributes") -> list[int]:
    """Column positions of ``wanted`` (all when None) in ``available``; unknown names list the valid ones."""
    available = list(available)
    if wanted is None:
        return list(range(len(available)))
    wanted = [str(w) for w in wanted]
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise ConfigError(f"{key}: {', '.join(unknown)} not in {source}; valid names: {', '.join(available)}")
    dupes = sorted({w for w in wanted if wanted.count(w) > 1})
    if dupes:
        raise ConfigError(f"{key}: {', '.join(dupes)} listed more than once")
    return [available.index(w) for w in wanted]
