"""Training's CPU split from costs measured on this run's own data and model, before the first epoch.

One model cannot be replicated like annotation's, so the question on a CPU is how to split the cores between
decoding and torch's threads. The answer depends on the model: resnet18 @112 costs ~50x its decoding per image,
the demo model ~4x. So ``data.num_workers=auto`` with ``train.cpu_threads=auto`` measures, on one training batch
(``data.batch_size`` images, at most 64): decode + geometry + augmentation per image (one core, in this process; the
second of two passes, as the first fetches files or cache pages from disk, which later epochs do not pay), and
forward + backward per image with all cores and with one (the faster of two timed steps after a warm-up: a shared
machine only ever slows a step down); facemac.resources.plan_from_costs predicts each split from those and takes the
fastest. Smaller batches than the run's would understate what threads gain (a batch of 32 measured 1.2x from 2
threads where the run's 64 gained 1.6x).

The probe leaves no trace: a copy of the augmentation draws the random numbers, every RNG is restored, the model is
measured in train mode (eval-mode kernels scale differently with threads) and its buffers (batch-norm statistics) are
put back, its gradients cleared. It costs a few forward+backward
passes (about 0.3 s for the demo model, ~15 s for vit_s @112 on a 2-core CPU).
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from facemac.data.dataset import collate_faces, normalize_on_device
from facemac.distributed import cores_per_local_rank
from facemac.resources import Costs, CpuPlan, apply_threads, refined
from facemac.training.loop.predict import autocast, resolve_precision
from facemac.training.loss import masked_bce
from facemac.training.state import rng_state, set_rng_state

log = logging.getLogger(__name__)

PROBE_IMAGES = 64
TIMED_STEPS = 2


def measure_costs(dataset: Any, model: nn.Module, mean: list[float], std: list[float], precision: str,
                  channels_last: bool, device: torch.device, cores: int, n: int = PROBE_IMAGES) -> Costs | None:
    """Per-image seconds of decoding (+ augmentation) on one core and of forward+backward on ``cores`` and 1 thread;
    None when the sampled images are all unreadable (nothing to measure the model on)."""
    state, threads, training = rng_state(), torch.get_num_threads(), model.training
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    probe = copy.copy(dataset)
    if getattr(dataset, "augment", None) is not None:
        probe.augment = copy.deepcopy(dataset.augment)  # the real augmentation's draws stay untouched
    rows = np.unique(np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int)).tolist()
    try:
        for i in rows:  # first touch (disk reads into the page cache, memmap faults) is not what every epoch costs
            probe[i]
        t0 = time.perf_counter()
        items = [probe[i] for i in rows]
        decode_s = (time.perf_counter() - t0) / len(rows)
        batch = collate_faces(items)
        if len(batch["index"]) == 0:
            return None
        if channels_last:
            model.to(memory_format=torch.channels_last)
        x = normalize_on_device(batch["image"], mean, std, device, channels_last=channels_last)
        y, m = batch["labels"].to(device), batch["mask"].to(device)
        prec = resolve_precision(precision, device)
        model.train()

        def step() -> None:
            with autocast(prec, device):
                logits = model(x)
            masked_bce(logits.float(), y, m).backward()

        per_image = {}
        for t in dict.fromkeys((cores, 1)):
            torch.set_num_threads(t)
            step()  # warm-up: oneDNN primitives for this thread count, allocator
            best = float("inf")
            for _ in range(TIMED_STEPS):
                t0 = time.perf_counter()
                step()
                best = min(best, time.perf_counter() - t0)
            per_image[t] = best / len(batch["index"])
        model.zero_grad(set_to_none=True)
    finally:
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
        set_rng_state(state)
        torch.set_num_threads(threads)
        model.train(training)
    return Costs(decode_s, per_image[cores], per_image[1], cores)


def plan_training(ctx: Any, dataset: Any, model: nn.Module, mean: list[float], std: list[float]) -> CpuPlan:
    """The stage's plan unless it is provisional (both auto on a CPU): then the measured choice, logged with its
    figures, applied (torch threads) and recorded (``data.num_workers`` and ``train.cpu_threads`` in the run's
    settings, config.yaml and W&B config: ``ctx.decide``)."""
    plan, s = ctx.plan, ctx.settings
    if not plan.measure:
        return plan
    n, cores = min(PROBE_IMAGES, s.data.batch_size), cores_per_local_rank(ctx.dist.world_size)
    # seconds for a real backbone on a small CPU (vit_s @112: ~15 s on 2 cores): say why nothing else is printed
    log.info("train resources: measuring decoding and %d forward+backward passes on %d training images to split %d "
             "cores between decoding and torch threads (set data.num_workers and train.cpu_threads to skip this)",
             2 * (1 + TIMED_STEPS) if cores > 1 else 1 + TIMED_STEPS, n, cores)
    costs = measure_costs(dataset, model, mean, std, s.train.precision, s.train.channels_last,
                          ctx.dist.device, cores, n=n)
    if costs is None:
        log.info("train resources: %s (%s; nothing readable to measure)", plan.describe(), plan.why)
        return plan
    new = refined(plan, costs)
    ctx.decide({"data.num_workers": new.workers, "train.cpu_threads": new.threads})
    apply_threads(new)
    log.info("train resources: %s (%s)", new.describe(), new.why)
    return new


__all__ = ["measure_costs", "plan_training", "PROBE_IMAGES"]
