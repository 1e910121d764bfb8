"""Annotation's geometry gate: every target's declaration, then a sample of its pixels, checked before any work.

Also the one place the annotate stage reads its detector and pixel-check keys (``annotate.detect.*``,
``annotate.pixel_check.*``) into typed settings.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Mapping

from facemac.annotation.targets import TargetSpec
from facemac.data.detect import DETECTOR_NAME, DetectorSettings, detector_settings_from, shared_detector
from facemac.data.pixel_check import MAX_ERROR, PixelCheckSettings, check_pixels
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _section(acfg: Mapping[str, Any] | Any, name: str) -> dict[str, Any]:
    value = acfg.get(name) if acfg is not None else None
    if value is None:
        return {}
    from facemac.config import to_plain

    return dict(to_plain(value))


def _known(section: dict[str, Any], valid: tuple[str, ...], key: str) -> None:
    unknown = sorted(set(section) - set(valid))
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def detector_settings(acfg: Mapping[str, Any] | Any) -> DetectorSettings:
    """``annotate.detect``: min_face, max_side, min_score (facemac.data.detect.DetectorSettings)."""
    return detector_settings_from(_section(acfg, "detect"), "annotate.detect")


def pixel_check_settings(acfg: Mapping[str, Any] | Any, seed: int = 0) -> PixelCheckSettings:
    """``annotate.pixel_check``: enabled, images, faces, max_error, max_odd_shapes."""
    c = _section(acfg, "pixel_check")
    _known(c, ("enabled", "images", "faces", "max_error", "max_odd_shapes"), "annotate.pixel_check")
    base = PixelCheckSettings()
    out = PixelCheckSettings(enabled=bool(c.get("enabled", True)), images=int(c.get("images", base.images)),
                             faces=int(c.get("faces", base.faces)), max_error=float(c.get("max_error", MAX_ERROR)),
                             max_odd_shapes=float(c.get("max_odd_shapes", base.max_odd_shapes)), seed=int(seed))
    if out.images < 1 or out.faces < 0 or out.max_error <= 0 or not 0 <= out.max_odd_shapes <= 1:
        raise ConfigError(f"annotate.pixel_check={c}: images >= 1, faces >= 0, max_error > 0 and max_odd_shapes in "
                          "[0, 1] please")
    return out


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
