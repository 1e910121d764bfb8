"""Batches of values + validity for the counting: annotation Parquet parts streamed a batch at a time, label files
(CelebA ``list_attr_celeba.txt``, MAAD-Face CSV, ``labels.csv``) parsed by the data readers training uses, so each
format has one hardened parser; the MAAD-Face CSV (millions of rows) is streamed through that reader's chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facemac.annotation_table import IDENTITY, reliability_column
from facemac.data.maadface import maadface_chunks
from facemac.data.table import FaceTable


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
        rel_cols = [reliability_column(a) for a in attributes]
        use_rel = min_reliability is not None and any(c in names for c in rel_cols)
        columns = ([IDENTITY] if IDENTITY in names else []) + list(attributes)
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
            codes, ids = _identity_codes(rb.column(IDENTITY) if IDENTITY in names else None, rows)
            yield Batch(values, valid, codes, ids, dropped)


def iter_table_batches(table: FaceTable, attributes: list[str], batch_size: int) -> Iterator[Batch]:
    """A label file read by facemac's data readers (the ones training uses) in ``batch_size`` rows at a time."""
    cols = [table.attributes.index(a) for a in attributes]
    labels, mask = table.labels[:, cols], table.mask[:, cols]
    codes, names = _identity_codes(None if table.identities is None else pa.array(table.identities), len(table))
    for lo in range(0, len(table), batch_size):
        hi = min(lo + batch_size, len(table))
        yield Batch(labels[lo:hi], mask[lo:hi], codes[lo:hi], names, np.zeros(len(cols), dtype=np.int64))


def iter_maadface_batches(path: Path, attributes: list[str], batch_size: int) -> Iterator[Batch]:
    """``MAAD_Face.csv`` streamed through the data reader's chunks (3.3M rows never held at once); 0 = masked."""
    _, chunks = maadface_chunks(path, attributes, chunk_rows=batch_size)  # columns in the order of ``attributes``
    for chunk in chunks:
        codes = chunk.codes
        ids, names = _identity_codes(pa.array(chunk.identities), len(codes))
        yield Batch((codes == 1).astype(np.float32), codes != 0, ids, names, np.zeros(len(attributes), dtype=np.int64))
