"""The one stage skeleton (lightning-hydra-template's ``task_wrapper``) that train, annotate and analyze share.

``run_stage(cfg, STAGE, work)`` owns everything around a stage's own work, in one order for all three:

1. the stage's typed settings (facemac/settings/), built once from the composed config before anything else: keys of
   the other stages (an experiment sets all three from one file) are dropped, unknown keys, bad choices and ranges
   refused in one line naming the key;
2. distributed init (torchrun) and the device;
3. the run folder (all ranks must agree on it) and its lock: one writer per folder, held by rank 0 only;
4. DataLoader workers, torch threads and annotation's inference threads: one policy (facemac/resources.py) turns
   ``auto`` into numbers (recorded in the settings; training refines its split from measured costs, ``ctx.decide``)
   and logs the choice and why; then the stage's own quick checks and decisions (``Stage.prepare``: training's model
   name, starting weights and precision), before any data work; the resolved settings are the run's one record,
   ``<run>/config.yaml`` and the W&B config (updated by every later decision);
5. the tracker's life (``wandb.finish()`` always runs, so multirun jobs never log into each other);
6. timing, and the DONE marker once the work finished (training stopped by ``stop_after_epochs`` is not done);
   a body that raised leaves ``FAILED`` with its error instead (facemac/run_state.py).

``report_errors()`` in the ``@hydra.main`` entry points turns a :class:`FacemacError` (a mistake a user can fix) into
one ``error: <message>`` line and exit status 2; ``HYDRA_FULL_ERROR=1`` shows the traceback. Bugs keep theirs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf

from facemac import distributed as D
from facemac.atomic import atomic_write
from facemac.errors import ConfigError, FacemacError, RunLockedError
from facemac.resources import CpuPlan, apply_threads, plan_cpu
from facemac.run_state import clear_failed, mark_failed
from facemac.runlock import RunLock
from facemac.runs import mark_done
from facemac.settings import SCHEMAS, STAGES, RunSettings, build_settings, common_keys, owner_of, replace, stage_keys
from facemac.tracking import NullTracker, create_tracker

log = logging.getLogger(__name__)

T = TypeVar("T")

RECORD = "config.yaml"  # <run>/config.yaml: the resolved settings the run used (its one record)

# Read from the schemas (facemac/settings/runs.py), kept under these names for the pipeline's routing.
COMMON_KEYS = common_keys()
STAGE_KEYS = stage_keys()
COMMON_GROUPS = RunSettings.groups
STAGE_GROUPS = {s: tuple(g for g in SCHEMAS[s].groups if g not in RunSettings.groups) for s in STAGES}


@dataclass(frozen=True)
class Stage:
    """What differs between the stages' start-ups: the lock's wording, and which settings hold device/workers/threads.

    ``prepare(settings, dist)`` runs the stage's checks before the tracker and any data work and returns the settings
    with its decisions (e.g. the starting weights' source), or None for no change."""

    name: str
    device_key: str | None = None   # e.g. "train.device"; None: the stage runs single-process on the CPU
    workers_key: str | None = None  # e.g. "data.num_workers" (auto → the plan's number, in the record)
    threads_key: str | None = None  # e.g. "train.cpu_threads"
    replicas_key: str | None = None  # e.g. "annotate.replicas": inference threads (auto → a number)
    serial: Callable[[RunSettings], bool] | None = None  # True: the work needs one inference thread (MC-dropout)
    base_name: Callable[[RunSettings], str] | None = None  # the W&B run name when logger.name is unset
    prepare: Callable[[RunSettings, D.DistInfo], RunSettings | None] | None = None


@dataclass
class StageContext:
    """What a stage's work gets: its settings, place in the job, run folder and tracker.

    ``settings`` is frozen; a decision made during the work goes through ``decide``, which records it (the
    settings object, ``<run>/config.yaml`` and the W&B config). ``cfg`` is a read-only DictConfig view of the same
    record, for code not yet taking the typed objects."""

    settings: RunSettings
    dist: D.DistInfo
    out: Path
    tracker: NullTracker
    plan: CpuPlan = CpuPlan(0, None)  # workers, torch threads and inference threads this run uses, and why
    finished: bool = True  # set False when the work stops early on purpose (no DONE marker: resumable)
    _view: tuple[int, DictConfig] | None = field(default=None, repr=False)

    @property
    def cfg(self) -> DictConfig:
        if self._view is None or self._view[0] != id(self.settings):
            self._view = (id(self.settings), config_view(self.settings))
        return self._view[1]

    def decide(self, values: Mapping[str, Any]) -> RunSettings:
        """Record decisions (``{"data.num_workers": 2}``) made after the start: settings, record file, W&B config."""
        for key, value in values.items():
            self.settings = replace(self.settings, key, value)
        if self.dist.is_main:
            write_record(self.settings, self.out)
        update = getattr(self.tracker, "update_config", None)  # test doubles may not have it
        if update is not None:
            update(self.settings.record())
        return self.settings


def config_view(settings: RunSettings) -> DictConfig:
    """A read-only DictConfig of the record: code that reads ``cfg.x.y`` sees the resolved values and cannot write."""
    view = OmegaConf.create(settings.record())
    OmegaConf.set_struct(view, True)
    OmegaConf.set_readonly(view, True)
    return view


def write_record(settings: RunSettings, out: Path) -> Path:
    """``<run>/config.yaml``: the stage's own and the common keys, every ``auto`` as it was decided."""
    path = out / RECORD
    with atomic_write(path, "w") as f:
        yaml.safe_dump(settings.record(), f, sort_keys=False)
    return path


def lookup(settings: Any, dotted: str, default: Any = None) -> Any:
    """The value at ``dotted`` in a settings object (a missing level gives ``default``)."""
    node = settings
    for part in dotted.split("."):
        if node is None or part not in node:
            return default
        node = node[part]
    return node


def run_name(cfg: Any, base: str | None) -> str | None:
    """``base`` plus the swept values of a multirun job, so sweep runs are told apart in W&B."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            swept = ",".join(o for o in hc.overrides.task if not o.startswith(("hydra.", "logger.")))
            name = f"{base or cfg.task_name or 'run'}#{hc.job.num}" + (f" {swept}" if swept else "")
            return name if len(name) <= 120 else name[:117] + "..."
    except (ValueError, ImportError, AttributeError):
        pass
    return base


def output_dir(cfg: Any) -> Path:
    """This run's folder; under torchrun all ranks must agree on it (an explicit hydra.run.dir)."""
    out = Path(str(cfg.paths.output_dir)).expanduser().resolve()
    main = Path(D.broadcast_object(str(out)))
    if main != out:
        raise ConfigError(f"torchrun ranks disagree on the run folder ({main} vs {out}); pass one explicit "
                          "hydra.run.dir=<folder> to every rank")
    return out


def _setup_cpu(settings: RunSettings, stage: Stage, dist: D.DistInfo) -> tuple[CpuPlan, RunSettings]:
    """Workers, torch threads and inference threads, one policy for every stage (facemac.resources.plan_cpu); the
    settings come back with every ``auto`` among them replaced by the plan's number."""
    if not stage.workers_key:
        return CpuPlan(0, None), settings
    keys = (stage.workers_key, stage.threads_key or "threads", stage.replicas_key or "replicas")
    workers = lookup(settings, keys[0], "auto")
    threads = lookup(settings, keys[1], "auto") if stage.threads_key else "auto"
    replicas = lookup(settings, keys[2], 1) if stage.replicas_key else 1
    plan = plan_cpu(stage.name, workers, threads, dist.device, dist.world_size, replicas=replicas,
                    serial=bool(stage.serial(settings)) if stage.serial else False, keys=keys)
    decided = {stage.workers_key: plan.workers}
    if stage.replicas_key:
        decided[stage.replicas_key] = plan.replicas
    if stage.threads_key and str(threads) == "auto":
        decided[stage.threads_key] = plan.threads
    for key, value in decided.items():
        settings = replace(settings, key, value)
    apply_threads(plan)
    log.info("%s resources: %s (%s)", stage.name, plan.describe(), plan.why)
    return plan, settings


def _folder_of(cfg: Any) -> str | None:
    """The run folder a composed config names, when it can be read (None: nothing to mark)."""
    if isinstance(cfg, DictConfig):
        try:
            value = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False)
        except Exception:  # noqa: BLE001 - best effort: the config error itself is what matters
            return None
        return None if value is None else str(value)
    return None


def run_stage(cfg: DictConfig | RunSettings, stage: Stage, work: Callable[[StageContext], T]) -> T:
    """Start up, run ``work(ctx)``, shut down: the same order and the same guarantees for every stage."""
    try:
        settings = build_settings(cfg, stage.name)  # every config mistake, before any other work
    except ConfigError as e:  # the folder Hydra made for this run (with its log) says it failed, and why
        mark_failed(_folder_of(cfg), e)
        raise
    t0 = time.perf_counter()
    if stage.device_key:
        dist = D.init_distributed(str(lookup(settings, stage.device_key, "auto")), key=stage.device_key)
        if str(lookup(settings, stage.device_key)) == "auto":
            settings = replace(settings, stage.device_key, str(dist.device))
    else:
        dist = D.DistInfo()
    lock = out = None
    try:
        out = output_dir(settings)
        lock = RunLock(out, f"{stage.name} run", hint="give this run its own hydra.run.dir")
        D.on_main(dist, lambda: (lock.acquire(), clear_failed(out))[1])
        plan, settings = _setup_cpu(settings, stage, dist)
        if stage.prepare is not None:
            settings = stage.prepare(settings, dist) or settings
        if settings.logger.name is None and settings.logger.backend != "none":
            settings = replace(settings, "logger.name",
                               run_name(settings, stage.base_name(settings) if stage.base_name else None))
        if dist.is_main:
            write_record(settings, out)
        with create_tracker(settings, stage.name, out, dist.rank) as tracker:
            ctx = StageContext(settings=settings, dist=dist, out=out, tracker=tracker, plan=plan)
            mode = getattr(tracker, "mode", None)
            if settings.logger.mode == "auto" and mode in ("online", "offline"):
                ctx.decide({"logger.mode": mode})  # online with credentials, else offline
            result = work(ctx)
        D.barrier()
        if dist.is_main and ctx.finished:
            mark_done(out)
        log.info("%s %s in %.1f s: %s", stage.name, "finished" if ctx.finished else "stopped", time.perf_counter() - t0,
                 out)
        return result
    except RunLockedError:
        raise  # the folder is another live run's: not ours to mark
    except Exception as e:  # recorded as <run>/FAILED (facemac/run_state.py), then raised as before
        mark_failed(out, e, dist.rank)
        raise
    finally:
        if lock is not None:
            lock.release()
        D.cleanup()


@contextlib.contextmanager
def report_errors() -> Iterator[None]:
    """A FacemacError, or a package that is not installed, ends the process with one ``error: <message>`` line and
    exit status 2 (traceback with HYDRA_FULL_ERROR=1); anything else is a bug and keeps its traceback."""
    try:
        yield
    except (FacemacError, ModuleNotFoundError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if isinstance(e, ModuleNotFoundError):
            if not e.name or e.name.split(".")[0] == "facemac":
                raise  # facemac's own module missing: a bug or a broken checkout, keep the traceback
            e = FacemacError(f"the Python package providing {e.name!r} is not installed; install facemac with its "
                             "dependencies (pip install -e .) or the package itself")
        _log_to_files(f"error: {e}")
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _log_to_files(message: str) -> None:
    """Put the message into the run's log file too (Hydra's file handler), without a second console line."""
    record = logging.LogRecord("facemac", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


__all__ = ["Stage", "StageContext", "run_stage", "report_errors", "owner_of", "output_dir", "run_name", "lookup",
           "write_record", "config_view", "RECORD", "COMMON_KEYS", "STAGE_KEYS", "COMMON_GROUPS", "STAGE_GROUPS"]
