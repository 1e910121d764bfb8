"""Annotation tables without a model, for tests and benchmarks (no part of the package): the same contract calls the
annotate stage makes (facemac.annotation_table), fed with given probabilities instead of a MAC's."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from facemac.annotation_table import (build_manifest, build_part, part_name, write_failures, write_manifest,
                                      write_part)


def write_annotation_dir(directory: Path, dataset: str, group: str, attributes: list[str],
                         parts: Iterable[tuple[np.ndarray, list[str | None] | np.ndarray | None]],
                         thresholds: dict[str, float] | None = None, reliability: Iterable[np.ndarray] | None = None,
                         checkpoint_sha256: str = "0" * 64, extra: dict | None = None) -> Path:
    """One ``part-XXXXX.parquet`` per (probabilities [n, A], identities) item, then failures.csv and manifest.json.

    Paths are ``<dataset>/<row:08d>.jpg`` numbered across parts; ``reliability`` gives one [n, A] array per part;
    ``extra`` adds manifest keys (e.g. the counting set of facemac.annotation_table.threshold_fields).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rel_iter = iter(reliability) if reliability is not None else None
    files, rows = [], []
    for k, (probs, identities) in enumerate(parts):
        n, total = len(probs), sum(rows)
        table = build_part([f"{dataset}/{total + i:08d}.jpg" for i in range(n)],
                           list(identities) if identities is not None else [None] * n, probs, attributes,
                           None if rel_iter is None else next(rel_iter))
        files.append(write_part(table, directory / part_name(k)))
        rows.append(n)
    write_failures(directory, [])
    write_manifest(directory, build_manifest(
        dataset=dataset, group=group, source_format="folders", root=str(directory), checkpoint="fixture.pt",
        checkpoint_sha256=checkpoint_sha256, attributes=attributes,
        thresholds=thresholds or {a: 0.5 for a in attributes}, part_files=files, part_rows=rows, num_failures=0,
        complete=True, mc_samples=0 if reliability is None else 8, extra=extra))
    return directory
