"""Parquet part files of the annotation table, written atomically (temp name + rename) so a kill leaves no half part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facemac.atomic import atomic_write

RELIABILITY_PREFIX = "reliability:"


def part_name(shard: int) -> str:
    """File name of one shard's part; the shard index (not the rank) names it, so ranks never collide."""
    return f"part-{shard:05d}.parquet"


def part_schema(attributes: list[str], with_reliability: bool) -> pa.Schema:
    """path, identity (nullable), one float32 probability per attribute, then optional reliability columns."""
    fields = [pa.field("path", pa.string(), nullable=False), pa.field("identity", pa.string())]
    fields += [pa.field(a, pa.float32(), nullable=False) for a in attributes]
    if with_reliability:
        fields += [pa.field(RELIABILITY_PREFIX + a, pa.float32(), nullable=False) for a in attributes]
    return pa.schema(fields)


def build_part(paths: list[str], identities: list[str | None], probs: np.ndarray, attributes: list[str],
               reliability: np.ndarray | None = None) -> pa.Table:
    """Column arrays → a table with the contract's schema (row count checked against every array)."""
    n = len(paths)
    if len(identities) != n or probs.shape != (n, len(attributes)):
        raise ValueError(f"part arrays disagree: {n} paths, {len(identities)} identities, probs {probs.shape}")
    cols: list[pa.Array] = [pa.array(paths, pa.string()), pa.array(identities, pa.string())]
    probs = np.asarray(probs, dtype=np.float32)
    cols += [pa.array(probs[:, j]) for j in range(len(attributes))]
    if reliability is not None:
        reliability = np.asarray(reliability, dtype=np.float32)
        cols += [pa.array(reliability[:, j]) for j in range(len(attributes))]
    return pa.Table.from_arrays(cols, schema=part_schema(attributes, reliability is not None))


def write_part_atomic(table: pa.Table, path: str | Path) -> Path:
    """Readers see the whole part or none (facemac.atomic)."""
    with atomic_write(path) as f:
        pq.write_table(table, f, compression="zstd")
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Small text files (sidecars, manifest, failures.csv) with the same all-or-nothing rename."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)
