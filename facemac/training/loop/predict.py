"""Batched prediction over a split, free of any optimiser: the training loop's validation/test passes and
``evaluate_checkpoint`` share it. Also the pieces both passes need: precision, autocast, failure counts, batches."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from facemac import distributed as D
from facemac.data.dataset import normalize_on_device
from facemac.errors import ConfigError, DataError
from facemac.progress import progress_bar
from facemac.training.loss import masked_bce

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` → bf16 on CUDA devices that support it, fp32 elsewhere; fp16 needs CUDA (it brings a GradScaler)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision={precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def limited_batches(loader: Any, limit: int | None, desc: str, show: bool) -> Iterator[tuple[Any, Any]]:
    """(progress bar, batch) pairs, at most ``limit`` batches (``train.limit_batches`` smoke runs)."""
    total = len(loader)
    if limit is not None:
        total = min(total, int(limit))
    with progress_bar(total=total, desc=desc, unit="batch", disable=not show, leave=False) as bar:
        for i, batch in enumerate(loader):
            if i >= total:
                break
            yield bar, batch
            bar.update(1)


@dataclass
class FailureLog:
    """Unreadable images seen in one pass: counted, a few kept for the message, aborting above a fraction."""

    bad: int = 0
    seen: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, failures: list[tuple[int, str]], n_good: int, keys: list[str]) -> None:
        self.bad += len(failures)
        self.seen += len(failures) + n_good
        for i, reason in failures[: max(0, 5 - len(self.examples))]:
            self.examples.append(f"{keys[i]}: {reason}")

    def check(self, max_fraction: float, what: str, device: torch.device) -> None:
        """Reduce counts over ranks and abort with a clear message when the unreadable share is too high."""
        bad, seen = D.all_reduce_sum([self.bad, self.seen], device)
        if bad and seen:
            frac = bad / seen
            if frac > max_fraction:
                raise DataError(f"{int(bad)} of {int(seen)} images ({frac:.1%}) in the {what} pass were unreadable, "
                                f"above train.max_bad_fraction={max_fraction}; e.g. " + "; ".join(self.examples))
            log.warning("%d of %d images in the %s pass were unreadable (skipped); e.g. %s", int(bad), int(seen),
                        what, "; ".join(self.examples[:3]))


@dataclass
class Predictions:
    """Probabilities, labels and masks of one split, in table row order (duplicates from sampler padding removed)."""

    index: np.ndarray
    probs: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    loss: float


@dataclass(frozen=True)
class PredictSettings:
    """How a pass feeds the model: normalisation, precision, memory format, limits and the bad-image budget."""

    device: torch.device
    mean: list[float]
    std: list[float]
    precision: str = "fp32"  # resolved (see resolve_precision)
    channels_last: bool = False
    pos_rate: torch.Tensor | None = None  # the loss weighting, so the reported val loss matches training's
    limit_batches: int | None = None
    max_bad_fraction: float = 0.01
    progress: bool = False


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, keys: list[str], desc: str, s: PredictSettings) -> Predictions:
    """Sigmoid probabilities for a split, gathered from every rank and put back in row order."""
    model.eval()
    fails = FailureLog()
    idx, probs, labels, masks = [], [], [], []
    loss_sum, n = 0.0, 0
    pos_rate = s.pos_rate.to(s.device) if s.pos_rate is not None else None
    for _, batch in limited_batches(loader, s.limit_batches, desc, s.progress):
        fails.add(batch["failures"], len(batch["index"]), keys)
        if len(batch["index"]) == 0:
            continue
        x = normalize_on_device(batch["image"], s.mean, s.std, s.device, channels_last=s.channels_last)
        with autocast(s.precision, s.device):
            logits = model(x).float()
        y = batch["labels"].to(s.device)
        m = batch["mask"].to(s.device)
        loss_sum += float(masked_bce(logits, y, m, pos_rate)) * len(batch["index"])
        n += len(batch["index"])
        idx.append(batch["index"].to(s.device))
        probs.append(torch.sigmoid(logits))
        labels.append(y.float())
        masks.append(m.bool())
    fails.check(s.max_bad_fraction, desc, s.device)
    a = int(model.head.out_features)
    cat = lambda xs, shape, dt: torch.cat(xs) if xs else torch.zeros(shape, dtype=dt, device=s.device)  # noqa: E731
    i = D.all_gather_rows(cat(idx, (0,), torch.long))
    p = D.all_gather_rows(cat(probs, (0, a), torch.float32))
    y = D.all_gather_rows(cat(labels, (0, a), torch.float32))
    mk = D.all_gather_rows(cat(masks, (0, a), torch.bool))
    total_loss, total_n = D.all_reduce_sum([loss_sum, n], s.device)
    i_np = i.cpu().numpy()
    _, first = np.unique(i_np, return_index=True)  # sorted unique row indices; drops DistributedSampler padding
    return Predictions(index=i_np[first], probs=p.cpu().numpy()[first], labels=y.cpu().numpy()[first],
                       mask=mk.cpu().numpy()[first], loss=total_loss / max(total_n, 1))
