"""Annotation's geometry gate: every target's declaration, then a sample of its pixels, checked before any work.

Also the one place the annotate stage reads its detector and pixel-check keys (``annotate.detect.*``,
``annotate.pixel_check.*``) into typed settings.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from facemac.annotation.targets import TargetSpec
from facemac.data.detect import DETECTOR_NAME, DetectorSettings, shared_detector
from facemac.data.pixel_check import PixelCheckSettings, check_pixels
from facemac.data.table import FaceTable
from facemac.errors import DataError
from facemac.settings.annotate import AnnotateSettings

log = logging.getLogger(__name__)


def detector_settings(a: AnnotateSettings) -> DetectorSettings:
    """``annotate.detect`` (validated by its schema): min_face, max_side, min_score (facemac.data.detect)."""
    d = a.detect
    return DetectorSettings(min_face=d.min_face, max_side=d.max_side, min_score=d.min_score)


def pixel_check_settings(a: AnnotateSettings, seed: int = 0) -> PixelCheckSettings:
    """``annotate.pixel_check`` (validated by its schema): enabled, images, faces, max_error, max_odd_shapes."""
    c = a.pixel_check
    return PixelCheckSettings(enabled=c.enabled, images=c.images, faces=c.faces, max_error=c.max_error,
                              max_odd_shapes=c.max_odd_shapes, seed=int(seed))


def detector_record(settings: DetectorSettings) -> dict[str, Any]:
    """What a manifest and the resume bookkeeping record about the detector (a resume must use the same one)."""
    return {"name": DETECTOR_NAME, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()}}


def check_target_geometries(specs: list[TargetSpec], tables: dict[str, FaceTable], preprocessor,
                            device, detect: DetectorSettings, pixels: PixelCheckSettings) -> None:
    """Declarations first (all refusals together), then each target's pixels (the first mismatch refuses)."""
    problems = []
    for s in specs:
        t = tables[s.name]
        try:
            preprocessor.check_geometry(t.geometry, t.landmarks is not None, s.name)
        except DataError as e:
            problems.append(str(e))
    if problems:
        raise DataError("targets whose images cannot be brought to the checkpoint's geometry (align="
                        f"{preprocessor.align}); set targets.<name>.geometry if it is wrong:\n  "
                        + "\n  ".join(problems))
    if not pixels.enabled:
        log.info("pixel check off (annotate.pixel_check.enabled=false): declared geometries are trusted")
        return
    if preprocessor.align != "arcface":
        return  # a whole-image (align=resize) model takes any crop as it is
    for s in specs:
        check_pixels(tables[s.name], pixels, lambda: shared_detector(detect, device), key=f"targets.{s.name}")
