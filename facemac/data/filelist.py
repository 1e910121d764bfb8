"""Plain image lists: `relative/path.jpg [identity]` lines, or a CSV whose header has `path` (and `identity`).

Many synthetic sets and benchmark protocols ship as lists. The list's order is kept (it is the user's order); paths
are relative to ``root``, which defaults to the list's own folder.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from facemac.data.labelcsv import check_field_counts
from facemac.data.layout import require_file
from facemac.data.sources import FileSource
from facemac.data.table import FaceTable
from facemac.errors import DataError
from facemac.progress import progress_bar

FILELIST_LAYOUT = ("one image per line, 'relative/path.jpg [identity]' separated by whitespace (# starts a comment), "
                   "or a CSV whose header has a 'path' column (and optionally 'identity')")


def _is_csv_header(line: str) -> bool:
    return "," in line and "path" in [c.strip().strip('"').lower() for c in line.split(",")]


def _read_csv_list(path: Path) -> tuple[list[str], list[str] | None]:
    check_field_counts(path, layout=FILELIST_LAYOUT)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: cannot be parsed ({e}); expected {FILELIST_LAYOUT}") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    keys = df[cols["path"]].str.strip().tolist()
    ids = df[cols["identity"]].str.strip().tolist() if "identity" in cols else None
    return keys, ids


def _read_plain_list(path: Path, lines: list[str]) -> tuple[list[str], list[str] | None]:
    keys: list[str] = []
    ids: list[str] = []
    with_id: bool | None = None
    for lineno, line in enumerate(progress_bar(lines, desc=f"read {path.name}", unit="line", leave=False,
                                       disable=len(lines) < 200_000), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) > 2:
            raise DataError(f"{path}, line {lineno}: {len(parts)} fields ({text[:80]!r}); expected {FILELIST_LAYOUT}")
        if with_id is None:
            with_id = len(parts) == 2
        elif with_id != (len(parts) == 2):
            raise DataError(f"{path}, line {lineno}: {'no identity' if with_id else 'an identity'} here but "
                            f"{'an identity' if with_id else 'none'} on the first line; expected {FILELIST_LAYOUT}")
        keys.append(parts[0])
        if with_id:
            ids.append(parts[1])
    return keys, (ids if with_id else None)


def read_file_list(path: str | Path, root: str | Path | None = None, geometry: str = "arcface_112",
                   name: str | None = None) -> FaceTable:
    """FaceTable of the images a list names; identity from the second field / `identity` column when present."""
    path = require_file(path, FILELIST_LAYOUT)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 text file; expected {FILELIST_LAYOUT}") from None
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), None)
    if first is None:
        raise DataError(f"{path} lists no images; expected {FILELIST_LAYOUT}")
    keys, ids = _read_csv_list(path) if _is_csv_header(first) else _read_plain_list(path, lines)
    if not keys:
        raise DataError(f"{path} lists no images; expected {FILELIST_LAYOUT}")
    keys = [k.replace("\\", "/") for k in keys]
    if "" in keys:
        raise DataError(f"{path}: row {keys.index('') + 1} has an empty path; expected {FILELIST_LAYOUT}")
    root = Path(root).expanduser() if root is not None else path.parent
    return FaceTable(name=name or path.stem, source=FileSource(root), keys=keys, identities=ids, geometry=geometry)
