"""Streaming readers: every input (annotation Parquet or a label file) becomes batches of values + validity.

Only counts are kept downstream, so nothing here holds more than one batch of rows. Label files are read directly
(CelebA ``list_attr_celeba.txt`` +-1, MAAD-Face CSV 1/-1/0 with 0 masked, demo ``labels.csv`` 0/1) because the
analysis needs counts, not FaceTables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facemac.errors import DataError

RELIABILITY_PREFIX = "reliability:"


@dataclass
class Batch:
    """Rows of one dataset: ``values`` [B, A] probabilities or 0/1 labels, ``valid`` [B, A] where they count.

    ``identity_codes`` [B] index ``identity_names`` (-1 = unknown identity); ``dropped`` [A] counts predictions the
    reliability filter removed from this batch.
    """

    values: np.ndarray
    valid: np.ndarray
    identity_codes: np.ndarray
    identity_names: np.ndarray
    dropped: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


def _identity_codes(column: pa.Array | pa.ChunkedArray | None, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary-encode an identity column (nulls and empty strings -> -1)."""
    if column is None:
        return np.full(rows, -1, dtype=np.int64), np.array([], dtype=object)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    column = column.cast(pa.string())
    encoded = pc.dictionary_encode(column)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    codes = np.where(np.isnan(codes), -1, codes).astype(np.int64) if codes.dtype.kind == "f" else codes.astype(np.int64)
    names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    empty = np.flatnonzero(names == "")
    if len(empty):
        codes[np.isin(codes, empty)] = -1
    return codes, names


def iter_parquet_batches(files: list[Path], attributes: list[str], batch_size: int,
                         min_reliability: float | None) -> Iterator[Batch]:
    """Annotation parts in column batches: only ``identity``, the chosen attributes and their reliabilities are read."""
    for file in files:
        pf = pq.ParquetFile(file)
        names = set(pf.schema_arrow.names)
        rel_cols = [f"{RELIABILITY_PREFIX}{a}" for a in attributes]
        use_rel = min_reliability is not None and any(c in names for c in rel_cols)
        columns = (["identity"] if "identity" in names else []) + list(attributes)
        columns += [c for c in rel_cols if use_rel and c in names]
        for rb in pf.iter_batches(batch_size=batch_size, columns=columns):
            rows = rb.num_rows
            values = np.empty((rows, len(attributes)), dtype=np.float32)
            for j, a in enumerate(attributes):
                values[:, j] = rb.column(a).to_numpy(zero_copy_only=False)
            valid = ~np.isnan(values)
            dropped = np.zeros(len(attributes), dtype=np.int64)
            if use_rel:
                for j, c in enumerate(rel_cols):
                    if c in names:
                        rel = rb.column(c).to_numpy(zero_copy_only=False)
                        low = valid[:, j] & ~(rel >= min_reliability)
                        dropped[j] = int(low.sum())
                        valid[:, j] &= ~low
            codes, ids = _identity_codes(rb.column("identity") if "identity" in names else None, rows)
            yield Batch(values, valid, codes, ids, dropped)


def _frame_batch(frame: pd.DataFrame, attributes: list[str], identity_col: str | None,
                 positive: float, negative: float, file: Path) -> Batch:
    """Label-file chunk -> Batch: ``positive`` -> 1, ``negative`` -> 0, anything else (0 in MAAD, blanks) masked."""
    try:
        raw = frame[attributes].apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{file}: non-numeric attribute value ({exc})") from exc
    is_pos, is_neg = raw == positive, raw == negative
    other = ~(is_pos | is_neg) & ~np.isnan(raw)
    if negative != 0 and positive != 0 and other.any():  # MAAD/CelebA: the only other legal code is 0 (undefined)
        bad = other & (raw != 0)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(f"{file}: attribute {attributes[c]!r} has value {raw[r, c]:g}; expected "
                            f"{int(positive)}, {int(negative)} or 0")
    elif other.any():
        r, c = np.argwhere(other)[0]
        raise DataError(f"{file}: attribute {attributes[c]!r} has value {raw[r, c]:g}; expected 0 or 1 (or empty)")
    values = is_pos.astype(np.float32)
    valid = is_pos | is_neg
    if identity_col is not None:
        ident = frame[identity_col]
        ident = ident.where(ident.notna(), None).astype(object)
        codes, names = pd.factorize(ident.map(lambda v: None if v is None or v == "" else str(v)), use_na_sentinel=True)
        codes = codes.astype(np.int64)
        names = np.asarray(names, dtype=object)
    else:
        codes, names = np.full(len(frame), -1, dtype=np.int64), np.array([], dtype=object)
    return Batch(values, valid, codes, names, np.zeros(len(attributes), dtype=np.int64))


def celeba_attributes(file: Path) -> list[str]:
    """Attribute names from the header line (line 2) of ``list_attr_celeba.txt``."""
    with open(file) as fh:
        fh.readline()
        return fh.readline().split()


def read_celeba_identities(file: Path) -> dict[str, str] | None:
    """``identity_CelebA.txt`` beside the attribute file, if present: image file -> identity number."""
    id_file = file.parent / "identity_CelebA.txt"
    if not id_file.exists():
        return None
    frame = pd.read_csv(id_file, sep=r"\s+", header=None, names=["path", "identity"], dtype=str)
    return dict(zip(frame["path"], frame["identity"]))


def iter_celeba_batches(file: Path, attributes: list[str], batch_size: int) -> Iterator[Batch]:
    """``list_attr_celeba.txt``: count line, header, then ``file +-1 ...`` separated by one or more spaces."""
    header = celeba_attributes(file)
    identities = read_celeba_identities(file)
    reader = pd.read_csv(file, sep=r"\s+", skiprows=2, header=None, names=["path", *header],
                         dtype={"path": str}, chunksize=batch_size)
    for chunk in reader:
        if identities is not None:
            chunk = chunk.assign(identity=chunk["path"].map(identities))
        yield _frame_batch(chunk, attributes, "identity" if identities is not None else None, 1, -1, file)


def iter_csv_batches(file: Path, attributes: list[str], batch_size: int, identity_col: str | None,
                     positive: float, negative: float) -> Iterator[Batch]:
    """A CSV label file (MAAD-Face: 1/-1/0, demo labels.csv: 1/0) in chunks of ``batch_size`` rows."""
    usecols = list(attributes) + ([identity_col] if identity_col else [])
    reader = pd.read_csv(file, usecols=usecols, chunksize=batch_size,
                         dtype={identity_col: str} if identity_col else None)
    for chunk in reader:
        yield _frame_batch(chunk, attributes, identity_col, positive, negative, file)
