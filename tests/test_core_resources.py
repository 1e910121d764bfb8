"""The resource policy (facemac/resources.py) and the hardware probe behind annotate.precision=auto."""

import pytest
import torch

from facemac import hardware
from facemac.annotation.inference import amp_choice
from facemac.errors import ConfigError
from facemac.resources import MAX_REPLICAS, Costs, CpuPlan, plan_cpu, plan_from_costs, refined

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)
KEYS = ("annotate.num_workers", "annotate.num_threads", "annotate.replicas")


def split(plan: CpuPlan) -> tuple[int, int | None, int]:
    return plan.workers, plan.threads, plan.replicas


@pytest.mark.parametrize("n,replicas,threads", [(1, 1, 1), (2, 2, 1), (4, 4, 1), (16, MAX_REPLICAS, 2),
                                                (64, MAX_REPLICAS, 8)])
def test_annotation_on_cpu_runs_inference_threads_that_decode_their_own_batches(cores, n, replicas, threads):
    cores(n)
    plan = plan_cpu("annotate", "auto", "auto", CPU, replicas="auto", keys=KEYS)
    assert (plan.workers, plan.threads, plan.replicas) == (0, threads, replicas)
    assert "decodes its own batches" in plan.why


def test_annotation_explicit_values_and_mc_dropout_keep_the_dataloader_path(cores):
    cores(8)
    assert split(plan_cpu("annotate", 0, 1, CPU, replicas="auto", keys=KEYS)) == (0, 1, 1)
    assert split(plan_cpu("annotate", 3, "auto", CPU, replicas="auto", keys=KEYS)) == (3, 5, 1)  # threads: the rest
    assert split(plan_cpu("annotate", "auto", 4, CPU, replicas="auto", keys=KEYS)) == (2, 4, 1)
    assert split(plan_cpu("annotate", "auto", "auto", CPU, replicas="auto", serial=True, keys=KEYS)) == (2, 6, 1)
    assert split(plan_cpu("annotate", "auto", "auto", CPU, replicas=4, keys=KEYS)) == (0, 2, 4)
    assert split(plan_cpu("annotate", "auto", 1, CPU, replicas=2, keys=KEYS)) == (0, 1, 2)
    with pytest.raises(ConfigError, match=r"annotate.replicas=0"):
        plan_cpu("annotate", "auto", "auto", CPU, replicas=0, keys=KEYS)


def test_gpu_gets_decode_workers_and_torchs_threads(cores):
    cores(16)
    plan = plan_cpu("annotate", "auto", "auto", GPU, replicas="auto", keys=KEYS)
    assert (plan.workers, plan.threads, plan.replicas) == (15, None, 1)


def test_training_on_cpu_is_provisional_until_measured(cores):
    cores(2)
    plan = plan_cpu("train", "auto", "auto", CPU)
    assert plan.measure and (plan.workers, plan.threads) == (1, 1)
    explicit = plan_cpu("train", 0, "auto", CPU)
    assert not explicit.measure and (explicit.workers, explicit.threads) == (0, 2)
    assert refined(explicit, Costs(1.0, 1.0, 1.0, 2)) is explicit  # explicit values are never overridden


def test_measured_costs_pick_inline_decoding_when_the_model_dominates():
    # resnet18-like on 2 cores: decode 0.3 ms, fwd+bwd 15.6 ms with 2 threads, 29 ms with 1
    plan, predicted = plan_from_costs(Costs(0.0003, 0.0156, 0.029, 2))
    assert (plan.workers, plan.threads) == (0, 2)
    assert predicted["0w+2t"] > predicted["1w+1t"]
    assert "0w+2t" in plan.why and "ms/img" in plan.why


def test_measured_costs_pick_workers_when_decoding_dominates():
    # decoding as costly as the step and poor thread scaling: a worker decoding beside a one-thread model wins
    plan, _ = plan_from_costs(Costs(0.0010, 0.0010, 0.0012, 2))
    assert (plan.workers, plan.threads) == (1, 1)
    plan8, _ = plan_from_costs(Costs(0.0020, 0.0002, 0.0016, 8))
    assert plan8.workers >= 1 and plan8.workers + plan8.threads == 8


def test_amdahl_interpolation_between_the_two_measurements():
    c = Costs(0.0, 0.5, 1.0, 4)  # 4 threads take half the 1-thread time
    assert c.model_s(1) == 1.0 and c.model_s(4) == 0.5
    assert 0.5 < c.model_s(2) < 1.0 and c.model_s(3) < c.model_s(2)


_REAL_FLAGS = hardware.cpu_flags
X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\nflags\t\t: fpu\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\nCPU implementer\t: 0x41\n"


def test_cpu_flags_are_read_from_cpuinfo():
    assert {"avx512_bf16", "avx512f", "amx_tile"} <= hardware.cpu_flags(X86)
    assert "bf16" in hardware.cpu_flags(ARM)
    assert hardware.cpu_flags("") == set()


@pytest.mark.parametrize("text,native", [(X86, True), (ARM, True), ("flags\t: fpu avx2 avx512f\n", False)])
def test_native_bf16_needs_the_cpu_flag(monkeypatch, text, native):
    hardware.cpu_native_bf16.cache_clear()
    monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=None: _REAL_FLAGS(text))
    monkeypatch.setattr(hardware.platform, "system", lambda: "Linux")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    try:
        got, why = hardware.cpu_native_bf16()
        assert got is native and ("native bf16" in why if native else "no native bf16" in why)
        assert amp_choice("auto", CPU)[0] == (torch.bfloat16 if native else None)
        assert amp_choice("off", CPU)[0] is None and amp_choice("bf16", CPU)[0] == torch.bfloat16  # explicit wins
    finally:
        hardware.cpu_native_bf16.cache_clear()


def test_plan_descriptions_say_what_runs_where():
    assert "2 inference threads x 1 torch thread(s)" in CpuPlan(0, 1, 2).describe()
    assert CpuPlan(0, 2).describe() == "decoding in the main process, 2 torch threads"
    assert CpuPlan(3, None).describe() == "3 DataLoader workers, torch default threads"
