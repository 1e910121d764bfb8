"""Reading W&B offline run files back, for tests (lineage, the dashboard's keys): no part of the package.

An offline run is ``<run folder>/wandb/offline-run-*/run-<id>.wandb``: W&B's record stream (a LevelDB-style log of
protobuf ``Record``s: a 7-byte file header, then 32 KiB blocks of [crc32, length, type] chunks). wandb >= 0.2x no
longer ships a Python reader (its datastore moved into wandb-core), so this one reads the stream.
"""

from __future__ import annotations

import json
import logging
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facemac.errors import DataError

log = logging.getLogger(__name__)

_LOG_MAGIC = b":W&B"
_LOG_HEADER = 7
_LOG_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class ArtifactRecord:
    """An artifact a run logged (output) or declared as used (input), as written in its run file."""

    name: str
    type: str
    digest: str
    files: dict[str, str]  # path in the artifact -> file digest
    aliases: list[str]
    used: bool  # True: an input (use after commit); False: an output the run logged
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class OfflineRun:
    """What one W&B run file holds, in the terms panels and lineage care about."""

    path: Path
    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history_keys: set[str] = field(default_factory=set)
    summary_keys: set[str] = field(default_factory=set)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    used_by_id: list[str] = field(default_factory=list)  # use-artifact records (inputs resolved online by W&B id)
    exit_code: int | None = None  # None: no exit record (still being written, or the process was killed)

    @property
    def inputs(self) -> list[ArtifactRecord]:
        return [a for a in self.artifacts if a.used]

    @property
    def outputs(self) -> list[ArtifactRecord]:
        return [a for a in self.artifacts if not a.used and not a.type.startswith("run_table")]

    def logged_keys(self) -> set[str]:
        """Every history/summary key, plus the names of logged objects (tables, images: ``kl_pairs``, ``figures/x``)."""
        keys = self.history_keys | self.summary_keys
        objects = {k.rsplit("/", 1)[0] for k in keys if k.endswith("/_type")}
        return {k for k in keys if not any(k.startswith(o + "/") for o in objects)} | objects


def _log_chunks(data: bytes, path: Path) -> Iterator[bytes]:
    """The records of a W&B run file; a torn last record (a killed run) ends the stream quietly."""
    if data[:4] != _LOG_MAGIC:
        raise DataError(f"{path}: not a W&B run file (no {_LOG_MAGIC!r} header)")
    pos, pending = _LOG_HEADER, b""
    while pos + _LOG_HEADER <= len(data):
        left = _LOG_BLOCK - pos % _LOG_BLOCK
        if left < _LOG_HEADER:  # block trailer padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + _LOG_HEADER])
        if kind == 0 and length == 0:  # zero fill to the end of a block
            pos += left
            continue
        chunk = data[pos + _LOG_HEADER:pos + _LOG_HEADER + length]
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc:
            log.warning("%s: record at byte %d is torn or corrupt; reading stops there", path, pos)
            return
        pos += _LOG_HEADER + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def _item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(path: str | Path) -> OfflineRun:
    """Parse one ``run-*.wandb`` file (or the ``offline-run-*`` folder holding it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise DataError(f"{path}: holds no run-*.wandb file")
        path = files[0]
    run = OfflineRun(path=path)
    for raw in _log_chunks(path.read_bytes(), path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.project, run.group, run.job_type, run.name = (
                r.run_id, r.project, r.run_group, r.job_type, r.display_name)
            run.config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "config":
            run.config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "history":
            run.history_keys.update(_item_key(i) for i in rec.history.item)
        elif kind == "summary":
            run.summary_keys.update(_item_key(i) for i in rec.summary.update)
        elif kind == "artifact":
            a = rec.artifact
            run.artifacts.append(ArtifactRecord(
                name=a.name, type=a.type, digest=a.digest, files={e.path: e.digest for e in a.manifest.contents},
                aliases=list(a.aliases), used=bool(a.use_after_commit),
                metadata=json.loads(a.metadata) if a.metadata else {}))
        elif kind == "use_artifact":
            run.used_by_id.append(rec.use_artifact.id)
        elif kind == "exit":
            run.exit_code = int(rec.exit.exit_code)
    run.config.pop("_wandb", None)
    return run


def offline_runs(run_folder: str | Path, wait_s: float = 0.0) -> list[OfflineRun]:
    """The W&B runs a stage's run folder holds (``<folder>/wandb/offline-run-*``; online runs keep the same file).

    W&B's service process writes the file and may still be flushing it for a moment after ``finish()`` returns
    (seen under CPU load): ``wait_s`` re-reads until every run has its exit record or the time is up.
    """
    deadline = time.monotonic() + wait_s
    while True:
        runs = [read_offline_run(p) for p in sorted(Path(run_folder).glob("wandb/*run-*/run-*.wandb"))]
        if all(r.exit_code is not None for r in runs) or time.monotonic() >= deadline:
            return runs
        time.sleep(0.2)
