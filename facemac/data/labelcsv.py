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
from facemac.data.sources import FileSource
from facemac.data.table import FaceTable
from facemac.errors import DataError

LABEL_CSV_LAYOUT = ("a CSV with a header row: path, [identity], [split], then one column per attribute holding "
                    "1 / 0 (empty or -1 = unknown); paths relative to the CSV's folder")
RESERVED = ("path", "identity", "split")
_SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2, "0": 0, "1": 1, "2": 2}


def _mismatch(path: Path, lineno: int, n: int, expected: int, layout: str) -> DataError:
    return DataError(f"{path}, line {lineno}: {n} fields, but the header has {expected}; expected {layout}")


def check_field_counts(path: Path, delimiter: str = ",", layout: str = LABEL_CSV_LAYOUT,
                       chunk_bytes: int = 1 << 22) -> None:
    """Every non-blank row must have as many fields as the header (pandas silently pads short rows, and shifts
    every column when all rows have one field too many). Counts delimiters per line with numpy, chunk by chunk,
    so millions of rows take about a second; files with quotes go through the csv module instead."""
    delim, expected, lineno, tail = ord(delimiter), None, 0, b""
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk_bytes)
            if b'"' in block:  # quoted fields may hold the delimiter or newlines
                return _check_field_counts_quoted(path, delimiter, layout)
            data = tail + block
            if not block:
                if not data.strip():
                    break
                data += b"\n"
            cut = data.rfind(b"\n") + 1
            data, tail = data[:cut], data[cut:]
            if not data:
                continue
            arr = np.frombuffer(data, dtype=np.uint8)
            ends = np.flatnonzero(arr == 10)
            starts = np.concatenate(([0], ends[:-1] + 1))
            commas = np.concatenate(([0], np.cumsum(arr == delim)))
            counts = commas[ends] - commas[starts] + 1
            nonblank = np.concatenate(([0], np.cumsum(arr > 32)))
            filled = (nonblank[ends] - nonblank[starts]) > 0
            rows = np.flatnonzero(filled)
            if expected is None and len(rows):
                expected = int(counts[rows[0]])
            if expected is not None:
                wrong = rows[counts[rows] != expected]
                if len(wrong):
                    i = int(wrong[0])
                    raise _mismatch(path, lineno + i + 1, int(counts[i]), expected, layout)
            lineno += len(ends)
            if not block:
                break


def _check_field_counts_quoted(path: Path, delimiter: str, layout: str) -> None:
    expected, lineno = None, 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                n = len(next(csv.reader([line], delimiter=delimiter), []))
                if expected is None:
                    expected = n
                elif n != expected:
                    raise _mismatch(path, lineno, n, expected, layout)
    except UnicodeDecodeError:
        raise not_utf8(path, lineno + 1, layout) from None
    except csv.Error as e:
        raise DataError(f"{path}, line {lineno}: {e}; expected {layout}") from None


def not_utf8(path: Path, lineno: int | None, layout: str) -> DataError:
    """The DataError for a text file holding bytes that are not UTF-8 (a binary file, or a Latin-1 export)."""
    where = f", line {lineno}" if lineno else ""
    return DataError(f"{path}{where}: not UTF-8 text; expected {layout}")


def numeric_columns(df: pd.DataFrame, cols: Sequence[str], path: Path, layout: str, first_line: int = 2) -> np.ndarray:
    """float32 [N, len(cols)] of columns pandas parsed as numbers (empty cells = NaN); a column holding text fails
    with the line and column of its first non-number (``first_line``: the file line of the frame's first row)."""
    out = np.empty((len(df), len(cols)), dtype=np.float32)
    for j, c in enumerate(cols):
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col.dtype):
            text = col.astype(str).str.strip()
            num = pd.to_numeric(text.replace("", np.nan), errors="coerce")
            bad = (num.isna() & (text != "") & (text.str.lower() != "nan")).to_numpy()
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise DataError(f"{path}, line {r + first_line}, column {c.strip()!r}: {text.iat[r]!r} is not a number; "
                                f"expected {layout}")
            col = num
        out[:, j] = col.to_numpy(np.float32, na_value=np.nan)
    return out


def parse_binary_cells(values: np.ndarray, columns: Sequence[str], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Numbers (NaN = empty) → (labels float32 0/1, mask bool): 1 / 0 known, -1 or empty unknown, else a DataError."""
    pos, neg = values == 1, values == 0
    unk = np.isnan(values) | (values == -1)
    bad = ~(pos | neg | unk)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}, line {r + 2}, column {columns[c]!r}: value {values[r, c]:g} is not a label; "
                        "expected 1 or 0 (empty or -1 for unknown)")
    return pos.astype(np.float32), ~unk


def header_columns(path: Path) -> list[str]:
    """The header row's column names (stripped), read before pandas so text columns can be typed as text."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return [c.strip() for c in next(csv.reader([f.readline()]), [])]
    except UnicodeDecodeError:
        raise not_utf8(path, 1, "a header row of column names") from None
    except csv.Error as e:
        raise DataError(f"{path}, line 1: {e}; expected a header row of column names") from None


def read_label_csv(path: str | Path, root: str | Path | None = None, geometry: str = "unknown",
                   name: str | None = None, attributes: Sequence[str] | None = None) -> FaceTable:
    """FaceTable from a label CSV; images are files under ``root`` (default: the CSV's folder)."""
    path = require_file(path, LABEL_CSV_LAYOUT)
    check_field_counts(path)
    try:
        text_cols = {c: str for c in header_columns(path) if c.lower() in RESERVED}
        df = pd.read_csv(path, dtype=text_cols, keep_default_na=False, na_values=[""], skipinitialspace=True,
                         encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be parsed ({e}); expected {LABEL_CSV_LAYOUT}") from None
    df.columns = [str(c).strip() for c in df.columns]
    if "path" not in df.columns:
        raise DataError(f"{path}: no 'path' column (header: {', '.join(df.columns)}); expected {LABEL_CSV_LAYOUT}")
    if len(df) == 0:
        raise DataError(f"{path}: header only, no rows; expected {LABEL_CSV_LAYOUT}")
    attr_cols = [c for c in df.columns if c not in RESERVED]
    cols = [attr_cols[i] for i in select_attributes(attr_cols, attributes, str(path))]
    labels, mask = parse_binary_cells(numeric_columns(df, cols, path, LABEL_CSV_LAYOUT), cols, path)
    keys = [p.strip().replace("\\", "/") for p in df["path"].fillna("").tolist()]
    if any(not k for k in keys):
        raise DataError(f"{path}, line {keys.index('') + 2}: empty path")
    splits = None
    if "split" in df.columns:
        values = df["split"].fillna("").str.strip().str.lower()
        unknown = ~values.isin(list(_SPLIT_NAMES))
        if unknown.any():
            i = int(np.flatnonzero(unknown.to_numpy())[0])
            raise DataError(f"{path}, line {i + 2}: split {df['split'].iloc[i]!r} is not one of train/val/test")
        splits = values.map(_SPLIT_NAMES).to_numpy(np.int8)
    identities = [s.strip() for s in df["identity"].fillna("").tolist()] if "identity" in df.columns else None
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
