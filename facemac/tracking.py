"""Experiment tracking. The only module that imports wandb; every stage talks to a Tracker.

``logger=wandb`` runs online when credentials exist and offline otherwise (with the ``wandb sync`` hint);
``logger=none`` gives a NullTracker. Everything a tracker logs is also written to the run directory by the stage
itself, so a run without W&B loses nothing.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class NullTracker:
    """Tracking switched off: every call is accepted and dropped."""

    enabled = False
    run_dir: Path | None = None

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None: ...

    def summary(self, values: dict[str, Any]) -> None: ...

    def log_table(self, name: str, frame: pd.DataFrame) -> None: ...

    def log_image(self, name: str, path: str | Path) -> None: ...

    def log_artifact(self, name: str, type: str, paths: list[str | Path], aliases: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, group_alias: bool = False) -> None: ...

    def use_artifact(self, ref: str, type: str | None = None) -> Path:
        from facemac.errors import ConfigError
        raise ConfigError(f"W&B artifact reference {ref!r} needs logger=wandb with credentials (wandb login)")

    def use_input(self, name: str, type: str, paths: Iterable[str | Path],
                  metadata: dict[str, Any] | None = None) -> str | None:
        """Declare local files as an input of this run (lineage); nothing to declare without tracking."""
        return None

    def finish(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


def has_wandb_credentials() -> bool:
    """True when an API key is reachable without asking anyone (env var or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class WandbTracker(NullTracker):
    """One W&B run per job; ``finish`` always runs (context manager), so multirun jobs never log into each other."""

    enabled = True

    def __init__(self, cfg: DictConfig, job_type: str, output_dir: str | Path):
        import wandb

        self._wandb = wandb
        lcfg = cfg.logger
        mode = lcfg.get("mode", "auto")
        if mode == "auto":
            mode = "online" if has_wandb_credentials() else "offline"
        self.mode = mode
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=lcfg.get("project", "facemac"), entity=lcfg.get("entity"), group=lcfg.get("group"),
            name=lcfg.get("name"), tags=list(lcfg.get("tags") or []), job_type=job_type, config=resolved,
            dir=str(output_dir), mode=mode, reinit="create_new", settings=wandb.Settings(silent=True),
        )
        self.run_dir = Path(self.run.dir).parent
        if mode == "offline":
            log.info("W&B is offline (no credentials); upload later with: wandb sync %s", self.run_dir)

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.run.log(metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        self.run.summary.update(values)

    def log_table(self, name: str, frame: pd.DataFrame) -> None:
        self.run.log({name: self._wandb.Table(dataframe=frame.reset_index(drop=True))})

    def log_image(self, name: str, path: str | Path) -> None:
        self.run.log({name: self._wandb.Image(str(path))})

    def log_artifact(self, name: str, type: str, paths: list[str | Path], aliases: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, group_alias: bool = False) -> None:
        """``group_alias``: also alias the version with the run's group, so a report on that group can name it."""
        art = self._wandb.Artifact(name=_artifact_name(name), type=type, metadata=metadata or {})
        for p in map(Path, paths):
            if p.is_dir():
                art.add_dir(str(p), name=p.name)
            else:
                art.add_file(str(p), name=p.name)
        aliases = list(aliases or ["latest"])
        if group_alias and self.run.group:
            aliases.append(group_alias_of(self.run.group))
        self.run.log_artifact(art, aliases=aliases)

    def use_artifact(self, ref: str, type: str | None = None) -> Path:
        """Download an artifact, verify every file against the digests in its manifest, return its folder."""
        from facemac.errors import ConfigError
        if self.mode != "online":
            raise ConfigError(f"W&B artifact reference {ref!r} needs credentials (wandb login); "
                              "pass a local path instead")
        art = self.run.use_artifact(ref, type=type)
        folder = Path(art.download())
        try:  # explicit: every file's MD5 against the manifest, and no file the artifact does not list
            art.verify(root=str(folder))
        except ValueError as e:
            from facemac.errors import DataError
            raise DataError(f"W&B artifact {ref!r} downloaded to {folder} does not match its recorded digests ({e}); "
                            f"delete {folder} and run again to download it afresh") from None
        self._declared().add(art.digest)
        return folder

    def _declared(self) -> set[str]:
        """Digests of the inputs this run already declared (use_artifact or use_input), so none is declared twice."""
        if "_used_digests" not in self.__dict__:  # also for trackers made without __init__ (tests)
            self._used_digests: set[str] = set()
        return self._used_digests

    def use_input(self, name: str, type: str, paths: Iterable[str | Path],
                  metadata: dict[str, Any] | None = None) -> str | None:
        """Declare local files as an input of this run, identified by their content, so that lineage holds offline.

        The files become a draft artifact ``name`` of file:// references (checksummed, never copied or uploaded),
        used by this run. W&B deduplicates by digest within an artifact name: when the producing stage logged the
        same files under the same name, the run uses that version (online at once, offline after ``wandb sync`` of
        the producer's run first); otherwise a reference-only version is created. Online this is the public
        ``run.use_artifact(draft)``; offline that call refuses, so the same record is written through
        ``run._log_artifact(..., use_after_commit=True)``, which is what it does. Returns the artifact digest.
        """
        art = self._wandb.Artifact(name=_artifact_name(name), type=type, metadata=metadata or {})
        for p in map(Path, paths):
            art.add_reference(p.resolve().as_uri(), name=p.name)  # checksum=True: MD5 of the content
        digest = art.digest
        if digest in self._declared() or self.mode == "disabled":
            return digest
        if self.mode == "online":
            self.run.use_artifact(art)
        else:
            self.run._log_artifact(art, is_user_created=True, use_after_commit=True)
        self._declared().add(digest)
        log.info("input %s (%s) declared by content, digest %s", art.name, type, digest)
        return digest

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def _artifact_name(name: str) -> str:
    """W&B artifact names allow letters, digits, '-', '_' and '.' only."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def group_alias_of(group: str) -> str:
    """The artifact alias a W&B group gets (aliases may not hold '/' or ':')."""
    return _artifact_name(str(group))


def create_tracker(cfg: DictConfig, job_type: str, output_dir: str | Path, rank: int = 0) -> NullTracker:
    """The tracker the config asks for; non-zero ranks never track."""
    backend = cfg.get("logger", {}).get("backend", "none") if cfg.get("logger") else "none"
    if rank != 0 or backend == "none":
        return NullTracker()
    if backend == "wandb":
        return WandbTracker(cfg, job_type, output_dir)
    from facemac.errors import ConfigError
    raise ConfigError(f"logger.backend={backend!r} is unknown; use logger=wandb or logger=none")


def default_entity() -> str | None:
    """The W&B entity the stored credentials default to (one API call); None when it cannot be had."""
    if not has_wandb_credentials():
        return None
    import wandb

    try:
        return wandb.Api().default_entity
    except Exception as e:  # noqa: BLE001 - network or auth: the caller says what to set instead
        log.warning("could not ask W&B for the default entity (%s); set logger.entity", e)
        return None


# --- reading offline runs ---------------------------------------------------------------------------------------------
# An offline run is `<run folder>/wandb/offline-run-*/run-<id>.wandb`: W&B's record stream (a LevelDB-style log of
# protobuf `Record`s: a 7-byte file header, then 32 KiB blocks of [crc32, length, type] chunks). wandb >= 0.2x no longer
# ships a Python reader (its datastore moved into wandb-core), so this one reads the stream for tests and tools.

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
        from facemac.errors import DataError
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
            from facemac.errors import DataError
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
    import time

    deadline = time.monotonic() + wait_s
    while True:
        runs = [read_offline_run(p) for p in sorted(Path(run_folder).glob("wandb/*run-*/run-*.wandb"))]
        if all(r.exit_code is not None for r in runs) or time.monotonic() >= deadline:
            return runs
        time.sleep(0.2)
