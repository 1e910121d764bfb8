"""``annotate.*`` and ``ckpt`` (conf/annotate.yaml): which MAC, how the rank's cores and device are spent."""

from __future__ import annotations

from typing import Union

from pydantic import Field

from facemac.settings.base import Section
from facemac.settings.data import DetectSettings
from facemac.settings.precision import Precision
from facemac.settings.types import AutoBool, AutoCount, AutoPositive, AutoThreads


class PixelCheckSettings(Section):
    """A sample of each target's pixels against its declared geometry, before annotating (docs/annotate.md)."""

    enabled: bool = True
    images: int = Field(200, ge=1)
    faces: int = Field(24, ge=0)
    max_error: float = Field(0.15, gt=0)
    max_odd_shapes: float = Field(0.1, ge=0, le=1)


class LogFacesSettings(Section):
    """logger=wandb: a seeded sample of the annotated faces as the W&B table ``annotated_faces``."""

    enabled: bool = True
    count: int = Field(200, ge=0)
    size: int = Field(112, ge=16)


class AnnotateSettings(Section):
    """``num_workers``/``num_threads``/``replicas``: ``auto`` in the YAML, the stage's plan in the record."""

    only: Union[list[str], str, None] = None
    batch_size: int = Field(128, ge=1)
    num_workers: AutoCount = "auto"
    num_threads: AutoThreads = "auto"
    replicas: AutoPositive = "auto"
    compile: AutoBool = "auto"
    shard_size: int = Field(4096, ge=1)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    gpu_decode: AutoBool = "auto"
    gpu_verify: bool = True
    precision: Precision = "auto"
    channels_last: AutoBool = "auto"
    mc_samples: int = Field(0, ge=0)
    max_failure_fraction: float = Field(0.05, ge=0, le=1)
    pixel_check: PixelCheckSettings = PixelCheckSettings()
    detect: DetectSettings = DetectSettings()  # the face detector of geometry: detect targets
    log_artifacts: bool = True
    log_faces: LogFacesSettings = LogFacesSettings()
