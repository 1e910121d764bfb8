"""torchrun / DDP helpers: one process per device, gloo on CPU, nccl on GPU; single-process runs need none of it.

torch is imported inside the functions that use it: every stage imports this module, and the analysis and audit
stages (no device, no model) must not pay torch's import (~650 MB RSS with the CUDA build, issue #20's 1 GiB goal).
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from facemac.errors import FacemacError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # a torch.device wherever a stage has a device (init_distributed); the string "cpu" for a stage without one
    # (analysis, audit), which never touches torch. device_type() reads either.
    device: torch.device | str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def device_type(device: torch.device | str) -> str:
    """"cpu", "cuda", ... of a torch.device or a device string ("cuda:1"), without importing torch."""
    return str(getattr(device, "type", None) or str(device).split(":", 1)[0])


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set the env:// rendezvous variables for several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def pick_device(requested: str = "auto", local_rank: int = 0, key: str = "device") -> torch.device:
    """`auto` → this rank's GPU when CUDA exists, else the CPU; any other value is passed to torch.device."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from facemac.errors import ConfigError
        raise ConfigError(f"{key}={requested!r} but CUDA is not available; use {key}=cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return dev


def cores_per_local_rank(world_size: int = 1) -> int:
    """CPU cores this process may use: its affinity set shared among the ranks on this node (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    return max(1, cores // max(local, 1))


def parse_count(spec: Any, key: str, minimum: int, expected: str) -> int:
    """An integer config value of at least ``minimum``, or a ConfigError naming ``key`` and what was ``expected``."""
    try:
        n = int(spec)
    except (TypeError, ValueError):
        n = minimum - 1
    if n < minimum:
        from facemac.errors import ConfigError
        raise ConfigError(f"{key}={spec!r}: use {expected}")
    return n


def resolve_workers(spec: Any, device: torch.device | str, key: str, world_size: int = 1) -> int:
    """DataLoader workers per rank: ``auto`` = a quarter of the rank's cores on a CPU device (the model needs the
    rest; on 2 cores 1 worker measured best), all but one core (at most 16) when a GPU runs the model; or N >= 0."""
    if str(spec) == "auto":
        cores = cores_per_local_rank(world_size)
        kind = device_type(device)
        n = max(1, min(cores - 1, 16)) if kind == "cuda" else max(1, cores // 4)
        log.info("%s=auto: %d DataLoader workers (%d cores for this rank, model on %s)", key, n, cores, kind)
        return n
    return parse_count(spec, key, 0, "auto or a number of workers >= 0")


def resolve_threads(spec: Any, num_workers: int, device: torch.device | str, key: str,
                    world_size: int = 1) -> int | None:
    """torch CPU threads: ``auto`` = the rank's cores that its DataLoader workers leave free (>= 1) when the model runs
    on the CPU (OpenMP threads that share cores with busy workers stall at every barrier), torch's default with a
    GPU; ``null`` = torch's default; or N >= 1."""
    if spec in (None, "", "null"):
        return None
    if str(spec) == "auto":
        return max(1, cores_per_local_rank(world_size) - int(num_workers)) if device_type(device) == "cpu" else None
    return parse_count(spec, key, 1, "auto, null or a positive integer")


def init_distributed(device: str = "auto", timeout_s: float = 1800.0, key: str = "device") -> DistInfo:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU); a no-op otherwise."""
    if not launched_by_torchrun():
        return DistInfo(device=pick_device(device, key=key))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank, key=key)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s),
                                **({"device_id": dev} if dev.type == "cuda" else {}))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def _dist() -> Any:
    """torch.distributed, imported on first use."""
    import torch.distributed as dist

    return dist


def cleanup() -> None:
    """Leave the process group (safe to call when none exists)."""
    if is_initialized():
        _dist().destroy_process_group()


def is_initialized() -> bool:
    """True inside a process group. Without torch imported there can be none, so this never imports it."""
    if "torch" not in sys.modules:
        return False
    dist = _dist()
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return _dist().get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return _dist().get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint)."""
    if is_initialized():
        _dist().barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s value on every rank (small picklable objects: paths, decisions)."""
    if not is_initialized():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=src)
    return box[0]


def on_main(d: DistInfo, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only and hand its result (or its error, re-raised) to every rank: no rank hangs."""
    result, error = None, None
    if d.is_main:
        try:
            result = fn()
        except FacemacError as e:
            if d.world_size == 1:
                raise
            error = f"{type(e).__name__}: {e}"
    result, error = broadcast_object((result, error))
    if error is not None:
        raise FacemacError(f"rank 0 failed: {error}")
    return result


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks of a few scalars (failure counts, loss sums)."""
    if not is_initialized():
        return list(values)
    import torch

    dist = _dist()
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows (dim 0) on every rank; ranks may hold different row counts."""
    if not is_initialized():
        return t
    import torch

    dist = _dist()
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], device=t.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_i = [int(s.item()) for s in sizes]
    pad = max(sizes_i)
    padded = torch.zeros((pad, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    out = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(out, padded)
    return torch.cat([o[:s] for o, s in zip(out, sizes_i)], dim=0)
