"""Model selection on validation and early stopping, as one typed state that last.pt carries for a resume."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

SELECTABLE = ("mA", "mean_accuracy", "mean_f1", "mean_auroc")


@dataclass
class Selection:
    """Which epoch is best so far (``best.pt``) and whether to stop: ``update`` once per validated epoch."""

    monitor: str = "mA"
    min_delta: float = 0.0
    patience: int | None = None
    epoch: int = 0                  # epochs finished
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False
    best_metrics: dict[str, Any] | None = None

    def score(self, metrics: dict[str, Any]) -> float:
        """The monitored value; undefined (NaN/None) never wins."""
        v = metrics.get(self.monitor, math.nan)
        return -math.inf if v is None or math.isnan(v) else float(v)

    def update(self, epoch: int, metrics: dict[str, Any]) -> bool:
        """Record epoch ``epoch`` (1-based) with its validation metrics; True when it is the new best."""
        score = self.score(metrics)
        improved = self.best_metrics is None or score > self.best_score + self.min_delta
        self.epoch = epoch
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs, self.best_metrics = score, epoch, 0, metrics
        else:
            self.bad_epochs += 1
            self.stopped = self.patience is not None and self.bad_epochs >= self.patience
        return improved

    def state_dict(self) -> dict[str, Any]:
        """The progress fields as plain values (the monitor settings come from the config, not the checkpoint)."""
        return {k: v for k, v in asdict(self).items() if k not in ("monitor", "min_delta", "patience")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for f in fields(self):
            if f.name in state and f.name not in ("monitor", "min_delta", "patience"):
                setattr(self, f.name, state[f.name])
