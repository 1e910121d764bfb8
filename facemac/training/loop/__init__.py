"""The per-step training loop (trainer.py) and optimiser-free batched prediction (predict.py)."""

from facemac.training.loop.predict import Predictions, PredictSettings, predict, resolve_precision
from facemac.training.loop.trainer import Trainer

__all__ = ["Predictions", "PredictSettings", "Trainer", "predict", "resolve_precision"]
