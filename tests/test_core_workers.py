"""num_workers / num_threads = auto: DataLoader workers and torch threads as shares of the cores this rank may use."""

import pytest
import torch

from facemac.distributed import cores_per_local_rank, resolve_threads, resolve_workers
from facemac.errors import ConfigError

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


@pytest.mark.parametrize("n,cpu,gpu", [(1, 1, 1), (2, 1, 1), (8, 2, 7), (16, 4, 15), (64, 16, 16)])
def test_auto_workers_by_cores_and_device(cores, n, cpu, gpu):
    cores(n)
    assert resolve_workers("auto", CPU, "data.num_workers") == cpu
    assert resolve_workers("auto", GPU, "data.num_workers") == gpu


def test_ranks_on_one_node_share_its_cores(cores, monkeypatch):
    cores(16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun --nproc_per_node=4
    assert cores_per_local_rank() == 4
    assert resolve_workers("auto", GPU, "annotate.num_workers") == 3
    assert resolve_workers("auto", CPU, "annotate.num_workers") == 1


def test_explicit_workers_and_bad_values(cores):
    cores(8)
    assert resolve_workers(0, CPU, "data.num_workers") == 0 and resolve_workers("6", GPU, "data.num_workers") == 6
    for bad in (-1, "many", None):
        with pytest.raises(ConfigError, match=r"annotate.num_workers=.*auto or a number"):
            resolve_workers(bad, CPU, "annotate.num_workers")


def test_auto_threads_are_the_cores_the_workers_leave_free_on_cpu_only(cores, monkeypatch):
    cores(8)
    assert resolve_threads("auto", 2, CPU, "train.cpu_threads") == 6
    assert resolve_threads("auto", 8, CPU, "train.cpu_threads") == 1  # never below one
    assert resolve_threads("auto", 2, GPU, "train.cpu_threads") is None  # torch's default next to a GPU
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resolve_threads("auto", 1, CPU, "annotate.num_threads") == 3
    assert resolve_threads(None, 1, CPU, "annotate.num_threads") is None and resolve_threads(3, 1, CPU, "x") == 3
    for bad in (0, "many"):
        with pytest.raises(ConfigError, match=r"annotate.num_threads=.*auto, null or a positive integer"):
            resolve_threads(bad, 1, CPU, "annotate.num_threads")
