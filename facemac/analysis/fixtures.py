"""Writes annotation tables exactly per the contract, for tests and benchmarks (the annotate stage has its own writer)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facemac.analysis.manifest import sha256_file
from facemac.analysis.readers import RELIABILITY_PREFIX


def write_annotation_dir(directory: Path, dataset: str, group: str, attributes: list[str],
                         parts: Iterable[tuple[np.ndarray, list[str | None] | np.ndarray | None]],
                         thresholds: dict[str, float] | None = None, reliability: Iterable[np.ndarray] | None = None,
                         checkpoint_sha256: str = "0" * 64, extra: dict | None = None) -> Path:
    """One ``part-XXXXX.parquet`` per (probabilities [n, A], identities) item, then manifest.json and failures.csv;
    ``extra`` adds manifest keys (e.g. the counting set of facemac.labelrule.manifest_fields)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rel_iter = iter(reliability) if reliability is not None else None
    entries, total = [], 0
    for k, (probs, identities) in enumerate(parts):
        probs = np.asarray(probs, dtype=np.float32)
        n = len(probs)
        cols = {"path": pa.array([f"{dataset}/{total + i:08d}.jpg" for i in range(n)], pa.string()),
                "identity": pa.array(list(identities) if identities is not None else [None] * n, pa.string())}
        for j, a in enumerate(attributes):
            cols[a] = pa.array(probs[:, j], pa.float32())
        if rel_iter is not None:
            rel = np.asarray(next(rel_iter), dtype=np.float32)
            for j, a in enumerate(attributes):
                cols[f"{RELIABILITY_PREFIX}{a}"] = pa.array(rel[:, j], pa.float32())
        name = f"part-{k:05d}.parquet"
        pq.write_table(pa.table(cols), directory / name)
        entries.append({"file": name, "rows": n, "sha256": sha256_file(directory / name)})
        total += n
    (directory / "failures.csv").write_text("path,reason\n")
    manifest = {"format": "facemac-annotations", "version": 1, "dataset": dataset, "group": group,
                "source_format": "folders", "root": str(directory), "checkpoint": "fixture.pt",
                "checkpoint_sha256": checkpoint_sha256, "attributes": list(attributes),
                "thresholds": thresholds or {a: 0.5 for a in attributes}, "num_images": total, "num_failures": 0,
                "complete": True, "mc_samples": 0 if reliability is None else 8, "parts": entries, **(extra or {})}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return directory
