"""``data.*`` (conf/train.yaml): training's input pipeline (geometry policy, batches, workers, the detector)."""

from __future__ import annotations

from pydantic import Field

from facemac.settings.base import Section
from facemac.settings.dataset import Align
from facemac.settings.types import AutoCount


class DetectSettings(Section):
    """The face detector of ``geometry: detect`` datasets (MTCNN, facenet-pytorch)."""

    # the detector's own limits (facemac.data.detect.DetectorSettings), refused here with the key's full name
    min_face: int = Field(20, ge=8)
    max_side: int = Field(640, ge=64)
    min_score: float = Field(0.9, ge=0, lt=1)


class DataSettings(Section):
    """``num_workers``: ``auto`` in the YAML, the number the run used in its record (decided by the stage or the
    training probe)."""

    align: Align = "arcface"
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    num_workers: AutoCount = "auto"
    persistent_workers: bool = True
    prefetch_factor: int = Field(2, ge=1)
    reduced_decode: bool = True
    detect: DetectSettings = DetectSettings()
