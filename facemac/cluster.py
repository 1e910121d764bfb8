"""Cluster jobs: turn a submitit/SLURM multi-task job into the torchrun environment the stages already understand.

With ``hydra.launcher.tasks_per_node = gpus`` submitit starts one process per GPU, each running the Hydra job. Before
the job function runs, :class:`DistributedEnvCallback` exports ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` from the job's environment, so ``facemac.distributed`` (and
the annotation stage's rank sharding) start DDP exactly as they do under ``torchrun``. Single-task jobs are untouched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)

TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def master_port(job_id: str) -> int:
    """A port derived from the job id, so two jobs sharing a node do not collide (range 20000-39999)."""
    digits = "".join(c for c in str(job_id) if c.isdigit()) or "0"
    return 20000 + int(digits[-6:]) % 20000


def torchrun_env(job: Any) -> dict[str, str]:
    """The torchrun variables for one task of a submitit ``JobEnvironment``-like object."""
    hosts = list(job.hostnames) or ["localhost"]
    return {
        "RANK": str(job.global_rank),
        "WORLD_SIZE": str(job.num_tasks),
        "LOCAL_RANK": str(job.local_rank),
        "LOCAL_WORLD_SIZE": str(job.num_tasks // max(job.num_nodes, 1)),
        "MASTER_ADDR": hosts[0],
        "MASTER_PORT": str(master_port(job.job_id)),
    }


def export_distributed_env(environ: MutableMapping[str, str] | None = None, job: Any = None) -> dict[str, str]:
    """Export the torchrun variables when this process is one task of a multi-task submitit job; returns them.

    Nothing happens outside submitit, for single-task jobs, or when a launcher (torchrun) already set ``RANK``.
    """
    environ = os.environ if environ is None else environ
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return {}
    if job is None:
        job = _submitit_job(environ)
        if job is None:
            return {}
    if int(job.num_tasks) <= 1:
        return {}
    values = torchrun_env(job)
    environ.update(values)
    log.info("submitit task %s/%s: exported %s", values["RANK"], values["WORLD_SIZE"],
             " ".join(f"{k}={values[k]}" for k in TORCHRUN_KEYS))
    return values


def _submitit_job(environ: Mapping[str, str]) -> Any:
    """submitit's view of the current job, or None when this process is not a submitit job."""
    if not any(k.startswith(("SUBMITIT_", "SLURM_JOB_ID")) for k in environ):
        return None
    try:
        import submitit

        return submitit.JobEnvironment()
    except (ImportError, RuntimeError, KeyError):
        return None


class DistributedEnvCallback(Callback):
    """Hydra callback (``hydra.callbacks``) run inside every task before the job: see the module docstring."""

    def on_job_start(self, config: Any = None, **kwargs: Any) -> None:
        export_distributed_env()
