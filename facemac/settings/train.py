"""``train.*`` (conf/train.yaml): the training loop, selection and how the run spends its device."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from facemac.settings.base import Section
from facemac.settings.precision import Precision
from facemac.settings.types import AutoBool, AutoThreads

Monitor = Literal["mA", "mean_accuracy", "mean_f1", "mean_auroc"]


class EmaSettings(Section):
    enabled: bool = False
    decay: float = Field(0.998, gt=0, lt=1)


class EarlyStoppingSettings(Section):
    """``monitor`` selects best.pt, and is what the entry point returns to a sweeper (higher is better for all)."""

    monitor: Monitor = "mA"
    patience: Optional[int] = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0)


class TrainSettings(Section):
    """``precision`` and ``device`` hold ``auto`` in the YAML and what ran in the record."""

    epochs: int = Field(3, ge=1)
    max_steps: Optional[int] = Field(None, ge=1)
    limit_batches: Optional[int] = Field(None, ge=1)
    precision: Precision = "auto"
    channels_last: bool = True
    grad_clip: Optional[float] = Field(5.0, gt=0)
    layer_decay: Optional[float] = Field(None, gt=0, le=1)
    loss_weighting: Literal["positive_rate", "none"] = "positive_rate"
    threshold_objective: Literal["balanced_accuracy", "accuracy", "f1"] = "balanced_accuracy"
    counting_rule: Literal["accuracy", "rate_match", "balanced_accuracy"] = "accuracy"
    validation_rows: int = Field(50000, ge=0)  # validation predictions kept in the checkpoint; 0: none
    ema: EmaSettings = EmaSettings()
    early_stopping: EarlyStoppingSettings = EarlyStoppingSettings()
    stop_after_epochs: Optional[int] = Field(None, ge=1)
    resume: Optional[str] = None  # null | auto | <path to last.pt>
    max_bad_fraction: float = Field(0.01, ge=0, le=1)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    cpu_threads: AutoThreads = "auto"
    progress: bool = True
    decoded_cache: AutoBool = "auto"
    compile: bool = False
