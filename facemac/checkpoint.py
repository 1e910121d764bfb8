"""Checkpoints per the contract: plain tensors and Python values, written atomically, loaded without unpickling code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from facemac.atomic import atomic_write
from facemac.errors import CheckpointError

FORMAT = "facemac-mac"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_state", "attributes", "thresholds", "model_cfg", "data_cfg")


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to a temporary file beside ``path``, fsync it, then rename: a kill never leaves half a file."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True`` (no pickled code ever runs) and check the contract's keys."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain values "
                              f"(refused: loading it could run code): {str(e).splitlines()[0]}") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a facemac MAC checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return ckpt


def checkpoint_sets(ckpt: dict[str, Any],
                    path: Any = "checkpoint") -> tuple[list[float], list[float] | None, str | None]:
    """(reporting thresholds, counting thresholds or None for a checkpoint from before them, counting rule)."""
    n = len(ckpt["attributes"])
    reporting = [float(t) for t in ckpt["thresholds"]]
    counting = ckpt.get("counting_thresholds")
    if len(reporting) != n:
        raise CheckpointError(f"checkpoint {path}: {len(reporting)} thresholds for {n} attributes")
    if counting is not None:
        counting = [float(t) for t in counting]
        if len(counting) != n:
            raise CheckpointError(f"checkpoint {path}: {len(counting)} counting_thresholds for {n} attributes")
    return reporting, counting, ckpt.get("counting_rule") if counting is not None else None


def checkpoint_validation(ckpt: dict[str, Any], path: Any = "checkpoint"):
    """(identity int64 [N], labels int8 [N, A], probs float32 [N, A]) of the validation predictions the checkpoint
    carries (facemac/training/validation_store.py), or None for a checkpoint from before them."""
    import numpy as np

    v = ckpt.get("validation")
    if v is None:
        return None
    try:
        identity = np.asarray(v["identity"].numpy(), dtype=np.int64)
        labels = np.asarray(v["labels"].numpy(), dtype=np.int8)
        probs = np.asarray(v["probs"].float().numpy(), dtype=np.float32)
    except (KeyError, AttributeError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path}: 'validation' is not identity/labels/probs tensors ({e})") from e
    a = len(ckpt["attributes"])
    if labels.shape != (len(identity), a) or probs.shape != labels.shape:
        raise CheckpointError(f"checkpoint {path}: validation arrays disagree with {a} attributes "
                              f"(identity {identity.shape}, labels {labels.shape}, probs {probs.shape})")
    return identity, labels, probs
