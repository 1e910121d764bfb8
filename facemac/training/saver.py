"""best.pt / last.pt per epoch, both atomic (facemac.checkpoint), with what every checkpoint of a run shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facemac.checkpoint import save_checkpoint


@dataclass
class CheckpointSaver:
    """Writes ``<dir>/best.pt`` when an epoch improves the selection metric and ``<dir>/last.pt`` after every epoch."""

    directory: Path
    attributes: list[str]
    model_cfg: dict[str, Any]
    data_cfg: dict[str, Any]

    @property
    def best(self) -> Path:
        return self.directory / "best.pt"

    @property
    def last(self) -> Path:
        return self.directory / "last.pt"

    def save(self, epoch: int, step: int, thresholds: list[float], val: dict[str, Any],
             model_state: dict[str, Any], train_state: dict[str, Any],
             best_state: dict[str, Any] | None = None, counting: dict[str, Any] | None = None,
             validation: dict[str, Any] | None = None) -> None:
        """``best_state`` (the weights evaluated, e.g. EMA) only when this epoch is the new best; ``counting`` holds
        the counting thresholds and their rule (facemac.annotation_table); ``validation`` the validation predictions
        these thresholds were tuned on (facemac/training/validation_store.py)."""
        base = {"attributes": self.attributes, "model_cfg": self.model_cfg, "data_cfg": self.data_cfg,
                "epoch": epoch, "step": step, "thresholds": thresholds, **(counting or {}), "metrics": {"val": val},
                **({"validation": validation} if validation is not None else {})}
        if best_state is not None:
            save_checkpoint({**base, "model_state": best_state}, self.best)
        save_checkpoint({**base, "model_state": model_state, "train_state": train_state}, self.last)
