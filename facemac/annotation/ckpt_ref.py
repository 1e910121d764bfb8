"""``ckpt=`` → a checkpoint file: explicit path, ``latest`` finished train run, or a W&B artifact reference."""

from __future__ import annotations

import logging
from pathlib import Path

from facemac.errors import ConfigError
from facemac.runs import artifact_reference, latest_run

log = logging.getLogger(__name__)

BEST = "checkpoints/best.pt"


def resolve_checkpoint(ref: str | None, log_dir: str | Path, tracker=None) -> tuple[Path, str]:
    """(path, how it was found). Local paths win; ``[entity/project/]name:alias`` or ``wandb:<ref>`` go to W&B."""
    if ref is None or str(ref).strip() == "":
        raise ConfigError("ckpt is empty: pass ckpt=<path to best.pt>, ckpt=latest or ckpt=<W&B artifact reference>")
    ref = str(ref)
    if ref == "latest":
        run = latest_run(log_dir, "train", BEST)
        return run / BEST, f"latest finished train run {run}"
    path = Path(ref).expanduser()
    if path.is_dir():  # a train run folder or a downloaded artifact folder
        return _pick_in_dir(path, ref), f"path {path}"
    if path.is_file():
        return path, f"path {path}"
    artifact = artifact_reference(ref)
    if artifact is not None:
        if tracker is None:
            raise ConfigError(f"ckpt={ref!r} looks like a W&B artifact reference but tracking is off; "
                              "use logger=wandb or pass a local path")
        folder = tracker.use_artifact(artifact, type="model")
        return _pick_in_dir(Path(folder), ref), f"W&B artifact {artifact} (downloaded to {folder})"
    raise ConfigError(f"ckpt={ref!r}: no such file; pass a path to a .pt checkpoint, a train run folder, "
                      "ckpt=latest or a W&B artifact reference (name:alias)")


def _pick_in_dir(folder: Path, ref: str) -> Path:
    """best.pt (or checkpoints/best.pt) first, else the only .pt file; never guess between several."""
    for cand in (folder / "best.pt", folder / BEST):
        if cand.is_file():
            return cand
    pts = sorted(folder.rglob("*.pt"))
    if len(pts) == 1:
        return pts[0]
    raise ConfigError(f"ckpt={ref!r}: folder {folder} holds {len(pts)} .pt files and no best.pt; "
                      "pass the checkpoint file itself")
