"""torchrun helpers for rank-sharded annotation (gloo on CPU, nccl on GPUs); a no-op in a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch.distributed as td


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the torchrun group when WORLD_SIZE > 1 (env:// rendezvous)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    owns = False
    if use_cuda:
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return DistInfo(rank=td.get_rank(), world=td.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")), owns_group=owns)


def barrier(d: DistInfo) -> None:
    if d.world > 1:
        td.barrier()


def broadcast_object(obj: Any, d: DistInfo) -> Any:
    """Rank 0's value on every rank (a resolved checkpoint path, say)."""
    if d.world <= 1:
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(d: DistInfo) -> None:
    if d.owns_group and td.is_initialized():
        td.destroy_process_group()
