"""What a stage consumed, declared to its tracker by content, so the W&B lineage model → annotations → divergence
holds for local paths and offline runs too (not only for inputs given as W&B artifact references).

Each input is named the way its producing stage names the artifact it logs (``mac-<model>-<dataset>`` for a
checkpoint, ``annotations-<dataset>`` for an annotation table) and holds the same files under the same names, so its
digest equals the producer's and W&B resolves it to that version (see ``Tracker.use_input``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODEL_TYPE = "model"
ANNOTATIONS_TYPE = "annotations"
DIVERGENCE_ARTIFACT = DIVERGENCE_TYPE = "divergence"  # the analysis' output: CSVs, report, figures


def model_artifact_name(model_cfg: Mapping[str, Any], dataset: str | None) -> str:
    """``mac-<model>-<dataset>``: the name the train stage logs its best checkpoint under."""
    return f"mac-{model_cfg.get('name') or model_cfg.get('timm_name')}-{dataset or 'data'}"


def annotation_artifact_name(dataset: str) -> str:
    """``annotations-<dataset>``: the name the annotate stage logs one annotated dataset under."""
    return f"annotations-{dataset}"


def annotation_artifact_files(directory: Path, manifest: Mapping[str, Any]) -> list[Path]:
    """The files of one annotation table's artifact: its part files, manifest, failures list and, when listed, the
    MAC's validation predictions (the analysis corrects with them)."""
    from facemac.annotation_table import FAILURES, MANIFEST, VALIDATION_FILE, VALIDATION_KEY

    extra = [directory / str(manifest[VALIDATION_KEY].get("file", VALIDATION_FILE))] \
        if manifest.get(VALIDATION_KEY) else []
    return [directory / p["file"] for p in manifest["parts"]] + [directory / MANIFEST, directory / FAILURES] + extra


def _checkpoint_names(path: Path) -> tuple[Mapping[str, Any], str | None]:
    """(model config, training dataset name) from a checkpoint, memory-mapped so the weights are not read."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) file cannot be memory-mapped
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    data_cfg = ckpt.get("data_cfg") or {}
    return ckpt.get("model_cfg") or {}, data_cfg.get("dataset")


def declare_checkpoint(tracker, path: str | Path) -> str | None:
    """Record the checkpoint a run uses as its input model; returns the artifact digest (None when not tracking)."""
    if not getattr(tracker, "enabled", False):
        return None
    path = Path(path)
    try:
        model_cfg, dataset = _checkpoint_names(path)
    except Exception as e:  # noqa: BLE001 - lineage must never stop a run; the stage checks the file itself
        log.warning("checkpoint %s: cannot read its names for lineage (%s); declared under its file name", path, e)
        model_cfg, dataset = {"name": path.stem}, None
    return tracker.use_input(model_artifact_name(model_cfg, dataset), MODEL_TYPE, [path],
                             metadata={"path": str(path.resolve())})


def declare_annotations(tracker, directories: Iterable[str | Path]) -> dict[str, str]:
    """Record the annotation tables a run analyses; returns {dataset: artifact digest}."""
    if not getattr(tracker, "enabled", False):
        return {}
    from facemac.annotation_table import read_manifest

    out = {}
    for directory in map(Path, directories):
        manifest = read_manifest(directory)
        if manifest is None:
            continue
        dataset = str(manifest["dataset"])
        out[dataset] = tracker.use_input(annotation_artifact_name(dataset), ANNOTATIONS_TYPE,
                                         annotation_artifact_files(directory, manifest),
                                         metadata={"path": str(directory.resolve()), "dataset": dataset})
    return out
