"""The per-step training loop and batched prediction (one module each would be too thin; the trainer holds both)."""

from facemac.training.loop.trainer import Predictions, Trainer, resolve_precision

__all__ = ["Predictions", "Trainer", "resolve_precision"]
