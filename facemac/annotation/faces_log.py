"""``annotate.log_faces``: a seeded sample of the annotated faces as a W&B table (image, dataset, path, the MAC's
probabilities), so the W&B app shows the faces next to the numbers. Bounded, and never stops a run: the tables on
disk are the record, this is a view of them."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from facemac.annotation.logged import FACES_TABLE
from facemac.settings.annotate import LogFacesSettings

log = logging.getLogger(__name__)


def log_faces(tracker, tables: Sequence, s: LogFacesSettings, seed: int) -> int:
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
