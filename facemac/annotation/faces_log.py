"""``annotate.log_faces``: a seeded sample of the annotated faces as a W&B table (image, dataset, path, the MAC's
probabilities), so the W&B app shows the faces next to the numbers. Bounded, and never stops a run: the tables on
disk are the record, this is a view of them."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from omegaconf import DictConfig

from facemac.annotation.logged import FACES_TABLE
from facemac.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceLogSettings:
    """Validated ``annotate.log_faces.*``."""

    enabled: bool = True
    count: int = 200
    size: int = 112

    @classmethod
    def from_cfg(cls, acfg: DictConfig) -> FaceLogSettings:
        f = acfg.log_faces
        for key, least in (("count", 0), ("size", 16)):
            value = getattr(f, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"annotate.log_faces.{key}={value!r}: must be an integer >= {least}")
        return cls(enabled=bool(f.enabled), count=int(f.count), size=int(f.size))


def log_faces(tracker, tables: Sequence, s: FaceLogSettings, seed: int) -> int:
    """Log ``s.count`` faces spread over ``tables`` (facemac.faces.tables.SampledTable) as ``annotated_faces``;
    returns the rows logged (0 when off, untracked or failed: a failure is one warning, the run goes on)."""
    if not (s.enabled and s.count and getattr(tracker, "enabled", False) and tables):
        return 0
    try:
        from facemac.faces.tables import IMAGE, sampled_faces_frame

        t0 = time.perf_counter()
        frame = sampled_faces_frame(tables, s.count, seed, s.size)
        tracker.log_image_table(FACES_TABLE, frame, (IMAGE,))
    except Exception as e:  # noqa: BLE001 - a view for the W&B app; the annotation itself is complete on disk
        log.warning("W&B faces table skipped (%s: %s); the annotation is complete", e.__class__.__name__, e)
        return 0
    log.info("W&B: %d annotated faces logged as %s (%.1f s)", len(frame), FACES_TABLE, time.perf_counter() - t0)
    return len(frame)
