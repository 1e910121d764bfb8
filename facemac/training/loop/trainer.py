"""One epoch of training (autocast, channels-last, clipping, EMA, failure counts); prediction lives in predict.py."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import torch
from torch import nn

from facemac import distributed as D
from facemac.data.dataset import normalize_on_device
from facemac.errors import TrainingDivergedError
from facemac.training.ema import ModelEma
from facemac.training.loop.predict import (FailureLog, Predictions, PredictSettings, autocast, limited_batches, predict,
                                           resolve_precision)
from facemac.training.loss import masked_bce

log = logging.getLogger(__name__)

__all__ = ["Trainer", "Predictions", "resolve_precision"]


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
        return autocast(self.precision, self.device)

    def _inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        return normalize_on_device(batch["image"], self.mean, self.std, self.device, channels_last=self.channels_last)

    @property
    def done(self) -> bool:
        return self.max_steps is not None and self.step >= self.max_steps

    def train_epoch(self, loader: Any, epoch: int, keys: list[str]) -> dict[str, float]:
        """One pass over this rank's shard (or ``limit_batches`` of it); returns mean loss and images/s."""
        self.net.train()
        fails = FailureLog()
        loss_sum, n_seen, t0 = 0.0, 0, time.perf_counter()
        for bar, batch in limited_batches(loader, self.limit_batches, f"epoch {epoch + 1}", self.progress):
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

    def predict_settings(self) -> PredictSettings:
        """How this trainer's evaluation passes feed a model (same normalisation, precision and limits)."""
        return PredictSettings(self.device, self.mean, self.std, self.precision, self.channels_last, self.pos_rate,
                               self.limit_batches, self.max_bad_fraction, self.progress)

    def predict(self, loader: Any, keys: list[str], desc: str, model: nn.Module | None = None) -> Predictions:
        """Predict a split with ``model`` (default: the EMA weights when kept, else the trained ones)."""
        net = model if model is not None else (self.ema.module if self.ema is not None else self.model)
        return predict(net, loader, keys, desc, self.predict_settings())
