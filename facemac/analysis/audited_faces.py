"""With ``analyze.audit`` and logger=wandb: the audited faces with both labels (the person's, the MAC's) as the W&B
table ``audited_faces``, so a disagreement can be looked at. A view only: the audits are read and checked by the
estimates that use them; a failure here is one warning and the analysis goes on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from facemac.analysis.inputs import DatasetInput
from facemac.analysis.logged import AUDITED_FACES

log = logging.getLogger(__name__)


def read_audits(spec, datasets: Sequence[DatasetInput]) -> dict:
    """{dataset: Audit} for every annotated dataset ``analyze.audit`` names: a folder of ``<dataset>.csv`` or a
    mapping {dataset: csv} (the estimates refuse what does not fit; here such an entry is left out)."""
    from facemac.audit.format import csv_name, read_audit

    if hasattr(spec, "items"):
        paths = {str(k): Path(str(v)).expanduser() for k, v in spec.items()}
    else:
        paths = {d.name: Path(str(spec)).expanduser() / csv_name(d.name) for d in datasets}
    out = {}
    for d in datasets:
        path = paths.get(d.name)
        if d.is_prediction and path is not None and path.is_file():
            out[d.name] = read_audit(path, d.name, d.attributes, num_images=d.details.get("num_images"))
    return out


def log_audited_faces(tracker, folder, datasets: Sequence[DatasetInput], limit: int, size: int) -> int:
    """Log up to ``limit`` audited faces (facemac.faces.tables.audited_faces_table); ``folder``: analyze.audit (a
    folder or a mapping); returns the rows logged."""
    if folder is None or not getattr(tracker, "enabled", False) or limit == 0:
        return 0
    try:
        from facemac.faces.tables import IMAGE, audited_faces_frame

        audits = read_audits(folder, datasets)
        if not audits:
            log.warning("analyze.audit=%s holds no <dataset>.csv of the analysed datasets (%s); no audited faces "
                        "logged", folder, ", ".join(d.name for d in datasets if d.is_prediction))
            return 0
        frame = audited_faces_frame(audits, {d.name: d for d in datasets}, limit, size)
        tracker.log_image_table(AUDITED_FACES, frame, (IMAGE,))
    except Exception as e:  # noqa: BLE001 - a view for the W&B app; the outputs on disk are complete
        log.warning("W&B audited faces table skipped (%s: %s)", e.__class__.__name__, e)
        return 0
    log.info("W&B: %d audited faces logged as %s", len(frame), AUDITED_FACES)
    return len(frame)
