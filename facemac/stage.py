"""The one stage skeleton (lightning-hydra-template's ``task_wrapper``) that train, annotate and analyze share.

``run_stage(cfg, STAGE, work)`` owns everything around a stage's own work, in one order for all three:

1. the stage's own config: keys of the other stages (an experiment sets all three from one file) are dropped, so the
   resolved config a stage runs with, and sends to W&B, holds only what it uses (``stage_config``);
2. distributed init (torchrun) and the device;
3. the run folder (all ranks must agree on it) and its lock: one writer per folder, held by rank 0 only;
4. DataLoader workers, torch threads and annotation's inference threads: one policy (facemac/resources.py) turns
   ``auto`` into numbers (recorded as such in the config; training refines its split from measured costs) and logs
   the choice and why; then the stage's own quick checks (``Stage.prepare``: training's model name and starting
   weights), before any data work;
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from omegaconf import DictConfig, OmegaConf, open_dict

from facemac import distributed as D
from facemac.errors import ConfigError, FacemacError, RunLockedError
from facemac.resources import CpuPlan, apply_threads, plan_cpu
from facemac.run_state import clear_failed, mark_failed
from facemac.runlock import RunLock
from facemac.runs import mark_done
from facemac.tracking import NullTracker, create_tracker

log = logging.getLogger(__name__)

T = TypeVar("T")

# Top-level config keys every stage owns; the rest belong to exactly one stage (an experiment may set any of them).
COMMON_KEYS = ("task_name", "seed", "tags", "paths", "logger", "demo", "roots")
STAGE_KEYS = {
    "train": ("dataset", "model", "optim", "sched", "augment", "data", "train"),
    "annotate": ("ckpt", "targets", "annotate"),
    "analyze": ("annotations", "inputs", "analyze"),
}
# Tools that run through run_stage but are no pipeline stage (no override routing): their own top-level keys.
TOOL_KEYS = {"audit": ("annotations", "audit")}
# Config groups on the command line: every stage composes `experiment`, `launcher` and `local`; sweeps are training's.
COMMON_GROUPS = ("experiment", "launcher", "local", "hydra")
STAGE_GROUPS = {"train": ("hparams_search",)}


@dataclass(frozen=True)
class Stage:
    """What differs between the stages' start-ups: the lock's wording, and which keys hold device/workers/threads."""

    name: str
    device_key: str | None = None   # e.g. "train.device"; None: the stage runs single-process on the CPU
    workers_key: str | None = None  # e.g. "data.num_workers" (auto → a number, written back into the config)
    threads_key: str | None = None  # e.g. "train.cpu_threads"
    replicas_key: str | None = None  # e.g. "annotate.replicas": inference threads (auto → a number, written back)
    serial: Callable[[DictConfig], bool] | None = None  # True: the work needs one inference thread (MC-dropout)
    base_name: Callable[[DictConfig], str] | None = None  # the W&B run name when logger.name is unset
    prepare: Callable[[DictConfig, D.DistInfo], None] | None = None  # checks before the tracker and any data work


@dataclass
class StageContext:
    """What a stage's work gets: its config, place in the job, run folder and tracker."""

    cfg: DictConfig
    dist: D.DistInfo
    out: Path
    tracker: NullTracker
    plan: CpuPlan = CpuPlan(0, None)  # workers, torch threads and inference threads this run uses, and why
    finished: bool = True  # set False when the work stops early on purpose (no DONE marker: resumable)


def owner_of(key: str) -> tuple[str, ...]:
    """The stages an override's top-level key or group belongs to (all three for common keys); () if none."""
    top = key.lstrip("+~").split("=", 1)[0].split("@", 1)[0].split(".", 1)[0].split("/", 1)[0]
    if top in COMMON_KEYS or top in COMMON_GROUPS:
        return tuple(STAGE_KEYS)
    return tuple(s for s in STAGE_KEYS if top in STAGE_KEYS[s] or top in STAGE_GROUPS.get(s, ()))


def stage_config(cfg: DictConfig, stage: str) -> DictConfig:
    """``cfg`` without the other stages' top-level keys (struct and read-only flags kept; `hydra` is not a key)."""
    keep = set(COMMON_KEYS) | set({**STAGE_KEYS, **TOOL_KEYS}[stage])
    foreign = [k for k in cfg.keys() if k not in keep and k != "hydra"]
    if not foreign:
        return cfg
    with open_dict(cfg):
        for k in foreign:
            cfg.pop(k)
    log.debug("%s: dropped other stages' keys %s", stage, foreign)
    return cfg


def run_name(cfg: DictConfig, base: str | None) -> str | None:
    """``base`` plus the swept values of a multirun job, so sweep runs are told apart in W&B."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            swept = ",".join(o for o in hc.overrides.task if not o.startswith(("hydra.", "logger.")))
            name = f"{base or cfg.get('task_name', 'run')}#{hc.job.num}" + (f" {swept}" if swept else "")
            return name if len(name) <= 120 else name[:117] + "..."
    except (ValueError, ImportError, AttributeError):
        pass
    return base


def output_dir(cfg: DictConfig) -> Path:
    """This run's folder; under torchrun all ranks must agree on it (an explicit hydra.run.dir)."""
    out = Path(str(cfg.paths.output_dir)).expanduser().resolve()
    main = Path(D.broadcast_object(str(out)))
    if main != out:
        raise ConfigError(f"torchrun ranks disagree on the run folder ({main} vs {out}); pass one explicit "
                          "hydra.run.dir=<folder> to every rank")
    return out


def _setup_cpu(cfg: DictConfig, stage: Stage, dist: D.DistInfo) -> CpuPlan:
    """Workers, torch threads and inference threads, one policy for every stage (facemac.resources.plan_cpu)."""
    if not stage.workers_key:
        return CpuPlan(0, None)
    keys = (stage.workers_key, stage.threads_key or "threads", stage.replicas_key or "replicas")
    plan = plan_cpu(stage.name, OmegaConf.select(cfg, keys[0], default="auto"),
                    OmegaConf.select(cfg, keys[1], default="auto") if stage.threads_key else "auto", dist.device,
                    dist.world_size, replicas=OmegaConf.select(cfg, keys[2], default=1) if stage.replicas_key else 1,
                    serial=bool(stage.serial(cfg)) if stage.serial else False, keys=keys)
    with open_dict(cfg):  # auto → the numbers, recorded as such in the run's config
        for key, value in ((keys[0], plan.workers), (stage.replicas_key, plan.replicas)):
            if key:
                parent, _, leaf = key.rpartition(".")
                OmegaConf.select(cfg, parent)[leaf] = value
    apply_threads(plan)
    log.info("%s resources: %s (%s)", stage.name, plan.describe(), plan.why)
    return plan


def run_stage(cfg: DictConfig, stage: Stage, work: Callable[[StageContext], T]) -> T:
    """Start up, run ``work(ctx)``, shut down: the same order and the same guarantees for every stage."""
    cfg = stage_config(cfg, stage.name)
    t0 = time.perf_counter()
    if stage.device_key:
        dist = D.init_distributed(str(OmegaConf.select(cfg, stage.device_key, default="auto")), key=stage.device_key)
    else:
        dist = D.DistInfo()
    lock = out = None
    try:
        out = output_dir(cfg)
        lock = RunLock(out, f"{stage.name} run", hint="give this run its own hydra.run.dir")
        D.on_main(dist, lambda: (lock.acquire(), clear_failed(out))[1])
        plan = _setup_cpu(cfg, stage, dist)
        if stage.prepare is not None:
            stage.prepare(cfg, dist)
        if cfg.get("logger") is not None and "name" in cfg.logger and cfg.logger.get("name") is None:
            with open_dict(cfg):
                cfg.logger.name = run_name(cfg, stage.base_name(cfg) if stage.base_name else None)
        with create_tracker(cfg, stage.name, out, dist.rank) as tracker:
            ctx = StageContext(cfg=cfg, dist=dist, out=out, tracker=tracker, plan=plan)
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


__all__ = ["Stage", "StageContext", "run_stage", "report_errors", "stage_config", "owner_of", "output_dir",
           "run_name", "COMMON_KEYS", "STAGE_KEYS"]
