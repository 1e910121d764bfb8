"""How a stage spends the CPU cores it has: DataLoader workers, torch threads and annotation's inference threads.

The one policy every stage goes through (``stage._setup_cpu`` applies it, the stage's work gets the plan). A fixed
split (a quarter of the cores decoding, the rest for torch) starves a model that costs far more than its decoding:
on 2 cores it pins resnet18 to one core while the decode worker idles. What the policy does instead, per device:

* **GPU**: workers decode/read for the device (all cores but one, at most 16); torch keeps its default threads.
* **CPU, annotation**: ``replicas`` inference threads in the main process, each decoding its own batch and running
  the model on it with ``cores / replicas`` torch threads. Decoders (OpenCV, libjpeg-turbo) and torch's kernels
  release the GIL, so the threads run in parallel; no core waits for a batch another core decodes, and no OpenMP
  barrier spans a core that decoding is using. Inter-op parallelism over independent batches is also the most
  efficient way to run a small model on several cores (intra-op threads scale sub-linearly).
* **CPU, training**: one model, so no replicas. The split between decoding and torch threads follows measured costs
  (``plan_from_costs``): decode+augment per image on one core, forward+backward per image on all cores and on one;
  decoding in the main process with every core for torch when the model dominates, workers when decoding does.

Explicit ``num_workers`` / ``num_threads`` (``data.num_workers``, ``train.cpu_threads``) and ``annotate.replicas``
always win; the log says what was chosen and why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from facemac.distributed import cores_per_local_rank, device_type, parse_count, resolve_threads, resolve_workers

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MAX_REPLICAS = 8  # beyond this, inference threads share cores as intra-op threads (memory per in-flight batch)
# A worker split reaches this share of its prediction: batches cross processes (shared-memory hand-over, unpickling)
# and busy workers disturb torch's threads. Measured 0.81-0.97 (demo model, 2-core CPU, 1 worker + 1 thread).
LOADER_OVERHEAD = 0.85


@dataclass(frozen=True)
class CpuPlan:
    """Workers, torch threads (per inference thread) and inference threads one process runs with, and why."""

    workers: int
    threads: int | None  # None: torch's default
    replicas: int = 1  # annotation only: inference threads that each decode and infer their own batches
    why: str = ""
    measure: bool = False  # training: provisional, to be replaced by plan_from_costs once costs are measured

    def describe(self) -> str:
        threads = "torch default threads" if self.threads is None else f"{self.threads} torch threads"
        if self.replicas > 1:
            return (f"{self.replicas} inference threads x {threads.replace('threads', 'thread(s)')}, decoding in "
                    "those threads" + (f", {self.workers} workers" if self.workers else ""))
        where = f"{self.workers} DataLoader workers" if self.workers else "decoding in the main process"
        return f"{where}, {threads}"


def _is_auto(spec: Any) -> bool:
    return str(spec) == "auto"


def plan_cpu(stage: str, workers: Any, threads: Any, device: torch.device | str, world_size: int = 1,
             replicas: Any = 1, serial: bool = False, keys: tuple[str, str, str] = ("num_workers", "num_threads",
                                                                                   "replicas")) -> CpuPlan:
    """The plan for ``stage`` ("annotate" or "train") from its config values (``auto`` or numbers).

    ``serial``: the work needs one inference thread (annotation with MC-dropout: its draws follow one RNG stream).
    """
    wkey, tkey, rkey = keys
    cores = cores_per_local_rank(world_size)
    kind = device_type(device)
    if kind != "cpu":
        w = resolve_workers(workers, device, wkey, world_size)
        return CpuPlan(w, resolve_threads(threads, w, device, tkey, world_size), 1,
                       f"model on {kind}: workers prepare batches, torch keeps its default threads")
    if stage == "annotate" and not _is_auto(replicas):
        r = parse_count(replicas, rkey, 1, "auto or a positive integer")
        w = 0 if _is_auto(workers) else resolve_workers(workers, device, wkey, world_size)
        t = max(1, cores // r) if _is_auto(threads) else resolve_threads(threads, w, device, tkey, world_size)
        return CpuPlan(w, t, r, f"{rkey}={r}")
    if not (_is_auto(workers) and _is_auto(threads)):  # an explicit value: the fixed rule for the other one
        w = resolve_workers(workers, device, wkey, world_size)
        return CpuPlan(w, resolve_threads(threads, w, device, tkey, world_size), 1,
                       f"explicit {wkey}={workers} {tkey}={threads}")
    if stage == "annotate" and not serial:
        r = min(cores, MAX_REPLICAS)
        return CpuPlan(0, max(1, cores // r), r,
                       f"auto: model on CPU, {cores} cores: each inference thread decodes its own batches (no core "
                       "waits for another's decoding; independent batches scale better than intra-op threads)")
    w = max(1, cores // 4) if cores > 1 else 0
    why = ("auto: MC-dropout needs one inference thread" if stage == "annotate"
           else "auto: provisional until decoding and model costs are measured")
    return CpuPlan(w, max(1, cores - w), 1, why, measure=stage == "train")


@dataclass(frozen=True)
class Costs:
    """Seconds per image: decoding (+ augmentation) on one core, and the model step with ``cores`` and 1 thread."""

    decode_s: float
    model_all_s: float
    model_one_s: float
    cores: int

    def model_s(self, threads: int) -> float:
        """Per-image model time with ``threads`` threads, by Amdahl's law fitted to the two measurements."""
        c = self.cores
        if c <= 1 or threads >= c:
            return self.model_all_s if threads >= c else self.model_one_s
        ratio = min(1.0, max(1.0 / c, self.model_all_s / self.model_one_s))
        serial = (ratio - 1.0 / c) / (1.0 - 1.0 / c)  # share of the step that does not parallelise
        return self.model_one_s * (serial + (1.0 - serial) / max(threads, 1))


def plan_from_costs(costs: Costs) -> tuple[CpuPlan, dict[str, float]]:
    """Training's split from measured costs: every (workers, threads) that uses all cores, predicted images/s each;
    the fastest wins. In-process decoding runs in series with the step: 1 / (decode + step on all cores)."""
    c, d = costs.cores, costs.decode_s
    predicted = {f"0w+{c}t": 1.0 / (d + costs.model_all_s)}
    for w in range(1, c):
        predicted[f"{w}w+{c - w}t"] = LOADER_OVERHEAD * min(w / d if d > 0 else float("inf"),
                                                            1.0 / costs.model_s(c - w))
    best = max(predicted, key=predicted.get)
    w, t = (int(x[:-1]) for x in best.split("+"))
    why = (f"auto: measured decode+augment {d * 1e3:.3f} ms/img on 1 core, model step "
           f"{costs.model_all_s * 1e3:.3f} ms/img on {c} threads, {costs.model_one_s * 1e3:.3f} on 1; predicted "
           + ", ".join(f"{k} {v:.0f} img/s" for k, v in predicted.items()))
    return CpuPlan(w, t, 1, why), predicted


def apply_threads(plan: CpuPlan) -> None:
    """Set torch's intra-op threads as the plan says (None: leave torch's default)."""
    if plan.threads:  # OpenMP threads beyond the free cores spin at every barrier and crawl
        import torch

        torch.set_num_threads(plan.threads)


def refined(plan: CpuPlan, costs: Costs) -> CpuPlan:
    """``plan`` itself when it was explicit, else the measured choice (logged)."""
    if not plan.measure:
        return plan
    new, _ = plan_from_costs(costs)
    return replace(new, measure=False)


__all__ = ["CpuPlan", "Costs", "plan_cpu", "plan_from_costs", "refined", "apply_threads", "MAX_REPLICAS"]
