"""manifest.json and failures.csv: written by rank 0 once every part exists, manifest last (it marks completion)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from facemac.annotation.writer import write_text_atomic
from facemac.checkpoint import file_sha256

FORMAT = "facemac-annotations"
VERSION = 1
MANIFEST = "manifest.json"
FAILURES = "failures.csv"


def write_failures(out_dir: Path, failures: list[tuple[str, str]]) -> Path:
    """failures.csv with columns path,reason (CSV-quoted: reasons may hold commas)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "reason"])
    w.writerows(failures)
    return write_text_atomic(out_dir / FAILURES, buf.getvalue())


def build_manifest(*, dataset: str, group: str, source_format: str, root: str, checkpoint: str,
                   checkpoint_sha256: str, attributes: list[str], thresholds: list[float], part_files: list[Path],
                   part_rows: list[int], num_failures: int, complete: bool, mc_samples: int,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract's manifest; part hashes are taken from the files as they are on disk now."""
    parts = [{"file": p.name, "rows": int(n), "sha256": file_sha256(p)} for p, n in zip(part_files, part_rows)]
    return {
        "format": FORMAT, "version": VERSION, "dataset": dataset, "group": group, "source_format": source_format,
        "root": root, "checkpoint": checkpoint, "checkpoint_sha256": checkpoint_sha256,
        "attributes": list(attributes), "thresholds": {a: float(t) for a, t in zip(attributes, thresholds)},
        "num_images": int(sum(part_rows)), "num_failures": int(num_failures), "complete": bool(complete),
        "mc_samples": int(mc_samples), "parts": parts, **(extra or {}),
    }


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> Path:
    return write_text_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=1))


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None
