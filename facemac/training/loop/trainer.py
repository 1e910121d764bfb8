"""One epoch of training and one pass of prediction, with autocast, channels-last, clipping, EMA and failure counts."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from facemac import distributed as D
from facemac.data.dataset import normalize_on_device
from facemac.errors import ConfigError, DataError, TrainingDivergedError
from facemac.progress import progress_bar
from facemac.training.ema import ModelEma
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


class Trainer:
    """Holds the model, optimiser and the step logic; the stage function (run.py) drives epochs and checkpoints."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, dist: D.DistInfo,
                 mean: list[float], std: list[float], precision: str = "auto", channels_last: bool = True,
                 grad_clip: float | None = None, ema: ModelEma | None = None, pos_rate: torch.Tensor | None = None,
                 limit_batches: int | None = None, max_steps: int | None = None, max_bad_fraction: float = 0.01,
                 progress: bool = True, compile: bool = False):
        self.dist = dist
        self.device = dist.device
        self.model = model  # unwrapped; self.net is what trains (DDP-wrapped when distributed)
        self.channels_last = channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.net: nn.Module = model
        if dist.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if compile:  # train.compile: torch.compile the training forward (eval passes use the plain module)
            self.net = torch.compile(self.net)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.mean, self.std = mean, std
        self.precision = resolve_precision(precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.grad_clip = grad_clip
        self.ema = ema
        self.pos_rate = pos_rate.to(self.device) if pos_rate is not None else None
        self.limit_batches = limit_batches
        self.max_steps = max_steps
        self.max_bad_fraction = max_bad_fraction
        self.progress = progress and dist.is_main
        self.step = 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        return normalize_on_device(batch["image"], self.mean, self.std, self.device, channels_last=self.channels_last)

    def _batches(self, loader: Iterable, desc: str) -> Iterable:
        total = len(loader)  # type: ignore[arg-type]
        if self.limit_batches is not None:
            total = min(total, int(self.limit_batches))
        bar = progress_bar(loader, total=total, desc=desc, unit="batch", disable=not self.progress, leave=False,
                           dynamic_ncols=True)
        for i, batch in enumerate(bar):
            if i >= total:
                break
            yield bar, batch
        bar.close()

    @property
    def done(self) -> bool:
        return self.max_steps is not None and self.step >= self.max_steps

    def train_epoch(self, loader: Any, epoch: int, keys: list[str]) -> dict[str, float]:
        """One pass over this rank's shard (or ``limit_batches`` of it); returns mean loss and images/s."""
        self.net.train()
        fails = FailureLog()
        loss_sum, n_seen, t0 = 0.0, 0, time.perf_counter()
        for bar, batch in self._batches(loader, f"epoch {epoch + 1}"):
            if self.done:
                break
            fails.add(batch["failures"], len(batch["index"]), keys)
            if len(batch["index"]) == 0:
                continue
            x = self._inputs(batch)
            y = batch["labels"].to(self.device, non_blocking=True)
            m = batch["mask"].to(self.device, non_blocking=True)
            with self.autocast():
                logits = self.net(x)
            loss = masked_bce(logits, y, m, self.pos_rate)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"training diverged: the loss became {loss.item()} at step {self.step + 1} (epoch {epoch + 1}); "
                    "checkpoints/last.pt and best.pt are from the last finished epoch. Lower optim.lr, set "
                    "train.grad_clip, or use train.precision=fp32")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), float(self.grad_clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scheduler is not None:
                self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.step += 1
            b = len(batch["index"])
            loss_sum += float(loss.detach()) * b
            n_seen += b
            rate = n_seen * self.dist.world_size / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}", img_s=f"{rate:.0f}")
        fails.check(self.max_bad_fraction, "train", self.device)
        self.check_finite_weights(epoch)
        seconds = time.perf_counter() - t0
        total_loss, total_n = D.all_reduce_sum([loss_sum, n_seen], self.device)
        return {"loss": total_loss / max(total_n, 1), "images_per_s": total_n / max(seconds, 1e-9),
                "seconds": seconds, "images": total_n}

    @torch.no_grad()
    def check_finite_weights(self, epoch: int) -> None:
        """A NaN/inf weight (with a finite loss, e.g. an inf gradient) must never reach last.pt or best.pt."""
        bad = [n for n, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            raise TrainingDivergedError(
                f"training diverged: weights {', '.join(bad[:3])} became NaN/inf by step {self.step} "
                f"(epoch {epoch + 1}); checkpoints/last.pt and best.pt are from the last finished epoch. "
                "Lower optim.lr or set train.grad_clip")

    @torch.no_grad()
    def predict(self, loader: Any, keys: list[str], desc: str, model: nn.Module | None = None) -> Predictions:
        """Sigmoid probabilities for a split, gathered from every rank and put back in row order."""
        net = model if model is not None else (self.ema.module if self.ema is not None else self.model)
        net.eval()
        fails = FailureLog()
        idx, probs, labels, masks = [], [], [], []
        loss_sum, n = 0.0, 0
        for _, batch in self._batches(loader, desc):
            fails.add(batch["failures"], len(batch["index"]), keys)
            if len(batch["index"]) == 0:
                continue
            x = self._inputs(batch)
            with self.autocast():
                logits = net(x).float()
            y = batch["labels"].to(self.device)
            m = batch["mask"].to(self.device)
            loss_sum += float(masked_bce(logits, y, m, self.pos_rate)) * len(batch["index"])
            n += len(batch["index"])
            idx.append(batch["index"].to(self.device))
            probs.append(torch.sigmoid(logits))
            labels.append(y.float())
            masks.append(m.bool())
        fails.check(self.max_bad_fraction, desc, self.device)
        a = int(self.model.head.out_features)
        cat = lambda xs, shape, dt: torch.cat(xs) if xs else torch.zeros(shape, dtype=dt, device=self.device)  # noqa
        i = D.all_gather_rows(cat(idx, (0,), torch.long))
        p = D.all_gather_rows(cat(probs, (0, a), torch.float32))
        y = D.all_gather_rows(cat(labels, (0, a), torch.float32))
        mk = D.all_gather_rows(cat(masks, (0, a), torch.bool))
        total_loss, total_n = D.all_reduce_sum([loss_sum, n], self.device)
        i_np = i.cpu().numpy()
        _, first = np.unique(i_np, return_index=True)  # sorted unique row indices; drops DistributedSampler padding
        return Predictions(index=i_np[first], probs=p.cpu().numpy()[first], labels=y.cpu().numpy()[first],
                           mask=mk.cpu().numpy()[first], loss=total_loss / max(total_n, 1))
