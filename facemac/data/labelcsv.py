"""Generic label CSVs (`path, identity, <attributes as 0/1>`): the demo targets' ground truth and users' own labels.

A cell that is empty or -1 is *unknown*: its mask is False and it never counts as a negative.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.data.layout import require_file, select_attributes
from facemac.data.preprocess import GEOMETRIES
from facemac.data.sources import FileSource
from facemac.data.table import SPLITS, FaceTable
from facemac.errors import ConfigError, DataError

LABEL_CSV_LAYOUT = ("a CSV with a header row: path, [identity], [split], then one column per attribute holding "
                    "1 / 0 (empty or -1 = unknown); paths relative to the CSV's folder")
RESERVED = ("path", "identity", "split")
_SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2, "0": 0, "1": 1, "2": 2}


def check_field_counts(path: Path, delimiter: str = ",", layout: str = LABEL_CSV_LAYOUT) -> None:
    """Every non-blank row must have as many fields as the header (pandas silently pads short rows, and shifts
    every column when all rows have one field too many). Streams the file: fine for millions of rows."""
    expected = None
    with open(path, encoding="utf-8-sig", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if '"' in line:  # quoted fields may hold the delimiter
                n = len(next(csv.reader([line], delimiter=delimiter)))
            else:
                n = line.count(delimiter) + 1
            if expected is None:
                expected = n
            elif n != expected:
                raise DataError(f"{path}, line {lineno}: {n} fields, but the header has {expected}; "
                                f"expected {layout}")


def parse_binary_cells(raw: np.ndarray, columns: Sequence[str], path: Path,
                       negative: Sequence[str] = ("0",), unknown: Sequence[str] = ("", "-1")
                       ) -> tuple[np.ndarray, np.ndarray]:
    """String cells → (labels float32 0/1, mask bool); any other value is a DataError naming line and column."""
    raw = np.char.strip(raw.astype(str))
    num = pd.DataFrame(raw).apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    pos = num == 1
    neg = np.isin(raw, list(negative)) | np.isin(num, [float(v) for v in negative if _isnum(v)])
    unk = np.isin(raw, list(unknown)) | np.isin(num, [float(v) for v in unknown if _isnum(v)])
    bad = ~(pos | neg | unk)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}, line {r + 2}, column {columns[c]!r}: value {str(raw[r, c])!r} is not a label; "
                        f"expected 1, {' or '.join(map(repr, negative))} (or {' / '.join(map(repr, unknown))} "
                        "for unknown)")
    return pos.astype(np.float32), ~unk


def _isnum(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def read_label_csv(path: str | Path, root: str | Path | None = None, geometry: str = "unknown",
                   name: str | None = None, attributes: Sequence[str] | None = None) -> FaceTable:
    """FaceTable from a label CSV; images are files under ``root`` (default: the CSV's folder)."""
    if geometry not in GEOMETRIES:
        raise ConfigError(f"dataset.geometry={geometry!r} is unknown; choose one of {', '.join(GEOMETRIES)}")
    path = require_file(path, LABEL_CSV_LAYOUT)
    check_field_counts(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be parsed ({e}); expected {LABEL_CSV_LAYOUT}") from None
    df.columns = [str(c).strip() for c in df.columns]
    if "path" not in df.columns:
        raise DataError(f"{path}: no 'path' column (header: {', '.join(df.columns)}); expected {LABEL_CSV_LAYOUT}")
    if len(df) == 0:
        raise DataError(f"{path}: header only, no rows; expected {LABEL_CSV_LAYOUT}")
    attr_cols = [c for c in df.columns if c not in RESERVED]
    cols = [attr_cols[i] for i in select_attributes(attr_cols, attributes, str(path))]
    labels, mask = parse_binary_cells(df[cols].to_numpy(), cols, path)
    keys = [p.strip().replace("\\", "/") for p in df["path"].tolist()]
    if any(not k for k in keys):
        raise DataError(f"{path}, line {keys.index('') + 2}: empty path")
    splits = None
    if "split" in df.columns:
        values = df["split"].str.strip().str.lower()
        unknown = ~values.isin(list(_SPLIT_NAMES))
        if unknown.any():
            i = int(np.flatnonzero(unknown.to_numpy())[0])
            raise DataError(f"{path}, line {i + 2}: split {df['split'].iloc[i]!r} is not one of train/val/test")
        splits = values.map(_SPLIT_NAMES).to_numpy(np.int8)
    identities = [s.strip() for s in df["identity"].tolist()] if "identity" in df.columns else None
    root = Path(root).expanduser() if root is not None else path.parent
    return FaceTable(name=name or path.parent.name, source=FileSource(root), keys=keys, attributes=cols,
                     identities=identities, labels=labels, mask=mask, splits=splits, geometry=geometry)


def attach_labels(table: FaceTable, labels: FaceTable) -> FaceTable:
    """``table`` with labels (and splits) joined from ``labels`` by key; rows without a label row are masked out."""
    pos = {k: i for i, k in enumerate(labels.keys)}
    rows = np.array([pos.get(k, -1) for k in table.keys], dtype=np.int64)
    have = rows >= 0
    n, a = len(table), len(labels.attributes)
    lab = np.zeros((n, a), dtype=np.float32)
    msk = np.zeros((n, a), dtype=bool)
    lab[have] = labels.labels[rows[have]]
    msk[have] = labels.mask[rows[have]]
    splits = table.splits
    if splits is None and labels.splits is not None and have.all():
        splits = labels.splits[rows]
    identities = table.identities
    if identities is None and labels.identities is not None:
        identities = [labels.identities[r] if r >= 0 else "" for r in rows]
    return dataclasses.replace(table, attributes=list(labels.attributes), labels=lab, mask=msk, splits=splits,
                               identities=identities)
