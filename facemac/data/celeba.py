"""CelebA's official layout, parsed like torchvision's `CelebA` (header-driven names, {-1,1} -> {0,1}, official splits).

pandas' whitespace tokenizer reads the 202,599-row attribute file in well under a second; rows of the partition,
identity and landmark files are joined by file name, so a reordered file cannot silently shift labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.data.layout import require_dir, require_file, select_attributes
from facemac.data.sources import FileSource
from facemac.data.table import FaceTable
from facemac.errors import DataError

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
IMAGES_DIR = "img_align_celeba"
CELEBA_LAYOUT = (f"a CelebA folder holding {IMAGES_DIR}/*.jpg, {ATTR_FILE}, {PARTITION_FILE}, {IDENTITY_FILE} and "
                 f"optionally {LANDMARKS_FILE} (or its parent holding celeba/, torchvision's layout)")


def find_celeba_dir(root: str | Path) -> Path:
    """The folder that holds the CelebA files: ``root`` itself or torchvision's ``root/celeba``."""
    root = require_dir(root, CELEBA_LAYOUT)
    for cand in (root, root / "celeba"):
        if (cand / ATTR_FILE).is_file() or (cand / IMAGES_DIR).is_dir():
            return cand
    raise DataError(f"{root} has neither {ATTR_FILE} nor celeba/{ATTR_FILE}; expected {CELEBA_LAYOUT}")


def _read_table(path: Path, skiprows: int, ncols: int, what: str) -> pd.DataFrame:
    """Whitespace-separated rows `file v1 v2 ...` with exactly ``ncols`` values each (one or more spaces between)."""
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, skiprows=skiprows, dtype={0: str}, engine="c")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no rows; expected {what}") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: wrong number of columns ({e}); expected {what}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}); expected {what}") from None
    if df.shape[1] != ncols + 1:
        raise DataError(f"{path}, line {skiprows + 1}: {df.shape[1] - 1} values after the file name, expected "
                        f"{ncols} ({what})")
    values = df.iloc[:, 1:]
    short = values.isna().any(axis=1).to_numpy()
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise DataError(f"{path}, line {skiprows + i + 1}: fewer than {ncols} values after the file name "
                        f"({what})")
    if not all(pd.api.types.is_numeric_dtype(t) for t in values.dtypes):
        coerced = values.apply(pd.to_numeric, errors="coerce")
        bad, problem = coerced.isna().any(axis=1).to_numpy(), "non-numeric value"
        if not bad.any():  # all numbers, but some beyond 64 bits (pandas keeps those as Python objects)
            bad, problem = (coerced.astype(np.float64).abs() >= 2.0 ** 63).any(axis=1).to_numpy(), "number too large"
        i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise DataError(f"{path}, line {skiprows + i + 1}: {problem} ({what})")
    return df


def _align(df: pd.DataFrame, keys: pd.Index, path: Path) -> np.ndarray:
    """Values of ``df`` in the row order of ``keys``; a file listed in the attribute file but missing here fails."""
    names = df.iloc[:, 0]
    vals = df.iloc[:, 1:].to_numpy()
    if len(names) == len(keys) and (names.to_numpy() == keys.to_numpy()).all():
        return vals
    dup = names.duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(f"{path}: {names.iat[i]} is listed twice (second time on row {i + 1}); each file needs "
                        "exactly one row")
    pos = pd.Index(names).get_indexer(keys)
    if (pos < 0).any():
        missing = keys[int(np.flatnonzero(pos < 0)[0])]
        raise DataError(f"{path} has no row for {missing} (listed in {ATTR_FILE})")
    return vals[pos]


def read_attr_names(path: str | Path) -> list[str]:
    """The attribute names in the header (line 2) of list_attr_celeba.txt, without reading its rows."""
    path = require_file(path, f"{ATTR_FILE}: a count line, a header of attribute names, rows 'file ±1 ...'")
    try:
        with open(path, encoding="utf-8") as f:
            f.readline()
            names = f.readline().split()
    except UnicodeDecodeError:
        raise DataError(f"{path}, line 1 or 2: not UTF-8 text; expected a count line and a header of names") from None
    if not names:
        raise DataError(f"{path}, line 2: no attribute names; expected a header of names after the count line")
    return names


def read_attr_file(path: str | Path) -> tuple[list[str], pd.Index, np.ndarray]:
    """(attribute names from the header, file names, int8 values in {-1, 1}) of list_attr_celeba.txt."""
    names = read_attr_names(path)
    path = Path(path)
    df = _read_table(path, 2, len(names), f"{len(names)} values of -1/1 per row, one per header name")
    vals = df.iloc[:, 1:].to_numpy()
    bad = (vals != 1) & (vals != -1)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}, line {r + 3}, attribute {names[c]}: value {vals[r, c]} is not -1 or 1")
    return names, pd.Index(df.iloc[:, 0]), vals.astype(np.int8)


def read_celeba_labels(attr_path: str | Path, attributes: Sequence[str] | None = None,
                       name: str = "celeba") -> FaceTable:
    """The labels of a CelebA tree without its images: ``list_attr_celeba.txt`` (0/1 labels) and, when it sits beside
    it, ``identity_CelebA.txt``. Training adds splits and landmarks (``read_celeba``); the analysis needs only this."""
    attr_path = Path(attr_path)
    names, keys, vals = read_attr_file(attr_path)
    cols = select_attributes(names, attributes, str(attr_path))
    labels = (vals[:, cols] > 0).astype(np.float32)
    identities = None
    id_path = attr_path.parent / IDENTITY_FILE
    if id_path.is_file():
        ids = _align(_read_table(id_path, 0, 1, "rows 'file identity'"), keys, id_path)[:, 0]
        bad = ~np.isfinite(ids.astype(np.float64)) | (ids != np.round(ids.astype(np.float64)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{id_path}: identity {ids[i]} of {keys[i]} is not an integer")
        identities = ids.astype(np.int64).astype(str).tolist()
    return FaceTable(name=name, source=FileSource(attr_path.parent / IMAGES_DIR), keys=keys.tolist(),
                     attributes=[names[c] for c in cols], identities=identities, labels=labels,
                     mask=np.ones(labels.shape, dtype=bool))


def read_celeba(root: str | Path, attributes: Sequence[str] | None = None, geometry: str = "loose",
                name: str = "celeba") -> FaceTable:
    """FaceTable of a CelebA tree: 0/1 labels, official splits, identities and (if present) 5-point landmarks."""
    base = find_celeba_dir(root)
    require_dir(base / IMAGES_DIR, CELEBA_LAYOUT)
    table = read_celeba_labels(base / ATTR_FILE, attributes, name)
    keys = pd.Index(table.keys)

    part_path = require_file(base / PARTITION_FILE, "rows 'file 0|1|2' (train/valid/test)")
    splits = _align(_read_table(part_path, 0, 1, "rows 'file 0|1|2'"), keys, part_path)[:, 0]
    if ((splits < 0) | (splits > 2)).any():
        i = int(np.flatnonzero((splits < 0) | (splits > 2))[0])
        raise DataError(f"{part_path}: partition {splits[i]} for {keys[i]} is not 0, 1 or 2")

    landmarks = None
    lm_path = base / LANDMARKS_FILE
    if lm_path.is_file():
        lm = _align(_read_table(lm_path, 2, 10, "a count line, a header, rows 'file x1 y1 ... x5 y5'"), keys, lm_path)
        landmarks = lm.astype(np.float32).reshape(-1, 5, 2)
    return dataclasses.replace(table, splits=splits.astype(np.int8), landmarks=landmarks, geometry=geometry)
