"""Resumable shards: a fixed split of the image list; a finished shard is a part file plus a small sidecar.

The sidecar (``.state/part-XXXXX.json``) is written before its part and carries the shard's unreadable images, so a
resumed run still lists every failure. A shard counts as done only when both exist; the part's atomic rename is the
commit point, so a ``kill -9`` loses at most the shards in flight and never duplicates a row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from facemac.annotation_table import part_name, write_part
from facemac.atomic import write_text_atomic
from facemac.errors import CheckpointError, ConfigError

STATE_DIR = ".state"
RUN_FILE = "run.json"
# Fields of run.json that must match for a resume to be allowed (a mismatch would mix two annotations in one table).
# "detector" is recorded for geometry: detect only (absent = no detector on both sides, so older runs still resume).
MUST_MATCH = ("checkpoint_sha256", "num_listed", "shard_size", "keys_sha256", "mc_samples", "attributes", "detector")


def plan_shards(num_images: int, shard_size: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of every shard, in order; the same inputs always give the same plan."""
    if shard_size < 1:
        raise ConfigError(f"annotate.shard_size={shard_size}; must be >= 1")
    return [(s, min(s + shard_size, num_images)) for s in range(0, num_images, shard_size)]


def shards_for_rank(num_shards: int, rank: int, world: int) -> list[int]:
    """Shard i belongs to rank i % world (round robin keeps ranks balanced when shards are equal)."""
    return [i for i in range(num_shards) if i % world == rank]


def keys_sha256(keys: list[str]) -> str:
    """Fingerprint of the ordered image list: a resume over a changed dataset is refused, not silently mixed."""
    h = hashlib.sha256()
    for k in keys:
        h.update(k.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class ShardStore:
    """The on-disk state of one dataset's annotation directory."""

    out_dir: Path

    @property
    def state_dir(self) -> Path:
        return self.out_dir / STATE_DIR

    def prepare(self) -> None:
        """Create folders and drop temporaries a killed run left behind (rank 0 only, before any rank writes)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for tmp in list(self.out_dir.glob(".*.tmp")) + list(self.state_dir.glob(".*.tmp")):
            tmp.unlink(missing_ok=True)

    def write_run_info(self, info: dict[str, Any]) -> None:
        """Record what this directory is being filled with (first run only)."""
        if not (self.state_dir / RUN_FILE).exists():
            write_text_atomic(self.state_dir / RUN_FILE, json.dumps(info, indent=1))

    def check_run_info(self, info: dict[str, Any]) -> None:
        """Refuse to resume into a directory started with another checkpoint, dataset or shard plan."""
        path = self.state_dir / RUN_FILE
        old = json.loads(path.read_text())
        if old.get("checkpoint_sha256") != info["checkpoint_sha256"]:
            raise CheckpointError(
                f"refusing to resume into {self.out_dir}: it was annotated with checkpoint {old.get('checkpoint')} "
                f"(sha256 {str(old.get('checkpoint_sha256'))[:12]}…), this run uses {info['checkpoint']} "
                f"(sha256 {info['checkpoint_sha256'][:12]}…). Use a new run folder (drop hydra.run.dir) or delete it.")
        diff = [k for k in MUST_MATCH if old.get(k) != info.get(k)]
        if diff:
            detail = ", ".join(f"{k}: {old.get(k)!r} then, {info.get(k)!r} now" for k in diff if k != "attributes")
            raise ConfigError(f"refusing to resume into {self.out_dir}: {', '.join(diff)} changed ({detail}); "
                              "keep annotate.shard_size/mc_samples/detect and the dataset as they were, or use a new "
                              "run folder")

    def sidecar(self, shard: int) -> Path:
        return self.state_dir / part_name(shard).replace(".parquet", ".json")

    def part(self, shard: int) -> Path:
        return self.out_dir / part_name(shard)

    def is_done(self, shard: int) -> bool:
        return self.part(shard).exists() and self.sidecar(shard).exists()

    def commit(self, shard: int, rows: range, table: pa.Table, failures: list[tuple[str, str]]) -> None:
        """Sidecar first, then the part: the part's rename is what marks the shard finished."""
        meta = {"shard": shard, "start": rows.start, "stop": rows.stop, "rows": table.num_rows,
                "failures": [list(f) for f in failures]}
        write_text_atomic(self.sidecar(shard), json.dumps(meta))
        write_part(table, self.part(shard))

    def load_sidecar(self, shard: int) -> dict[str, Any]:
        return json.loads(self.sidecar(shard).read_text())
