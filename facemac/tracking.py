"""Experiment tracking. The only module that imports wandb; every stage talks to a Tracker.

``logger=wandb`` runs online when credentials exist and offline otherwise (with the ``wandb sync`` hint);
``logger=none`` gives a NullTracker. Everything a tracker logs is also written to the run directory by the stage
itself, so a run without W&B loses nothing.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Iterable, Sequence
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

    def log_image_table(self, name: str, frame: pd.DataFrame, image_columns: Sequence[str] = ("image",)) -> None:
        """A table whose ``image_columns`` hold uint8 RGB arrays (or None): faces shown next to their numbers."""

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

    def log_image_table(self, name: str, frame: pd.DataFrame, image_columns: Sequence[str] = ("image",)) -> None:
        self.run.log({name: images_table(frame, image_columns)})

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
        ``run._log_artifact(..., use_after_commit=True)``, which is what it does. Returns the artifact digest, or
        None when lineage was skipped: that private call may change in any wandb release, and lineage never stops
        a run, so any failure here is a warning and the run goes on.
        """
        try:
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
        except Exception as e:  # noqa: BLE001 - a wandb API change (or the network) must not end the run
            log.warning("lineage skipped: input %s (%s) is not declared to W&B (wandb %s: %s: %s); the run goes on "
                        "and its outputs are complete", name, type, getattr(self._wandb, "__version__", "?"),
                        e.__class__.__name__, e)
            return None
        self._declared().add(digest)
        log.info("input %s (%s) declared by content, digest %s", art.name, type, digest)
        return digest

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def images_table(frame: pd.DataFrame, image_columns: Sequence[str] = ("image",)):
    """A ``wandb.Table`` of ``frame`` with the arrays in ``image_columns`` as ``wandb.Image`` (None stays empty), other
    cells as plain Python values (NaN -> None)."""
    import wandb

    columns = list(frame.columns)
    images = set(image_columns)
    rows = []
    for values in frame.itertuples(index=False, name=None):
        row = []
        for c, v in zip(columns, values):
            if c in images:
                row.append(None if v is None else wandb.Image(v))
            elif v is None or v is pd.NA or (isinstance(v, float) and v != v):
                row.append(None)
            else:
                row.append(v.item() if hasattr(v, "item") else v)
        rows.append(row)
    return wandb.Table(columns=columns, data=rows)


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
