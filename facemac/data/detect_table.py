"""``geometry: detect`` for training sets: find every face once, keep the points as the table's landmarks.

Training reads each face every epoch, so detection runs once per dataset, before training, and its result is kept
as a landmarks file in VGGFace2's ``bb_landmark`` format under ``<cache_dir>/detect/`` (named by the dataset, its
image list and the detector settings): a second run, a sweep or another rank reads it instead of detecting again.
Images without a face are left out like images without landmarks (``max_missing_landmarks``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import re
from dataclasses import asdict
from pathlib import Path

from facemac.atomic import write_text_atomic
from facemac.data.detect import DetectorSettings, shared_detector
from facemac.data.detect_batch import decode_rows
from facemac.data.maadface import LANDMARK_HEADER, attach_landmarks, read_vggface2_landmarks
from facemac.data.table import FaceTable
from facemac.errors import DataError
from facemac.progress import progress_bar

log = logging.getLogger(__name__)


def landmarks_cache_path(table: FaceTable, settings: DetectorSettings, cache_dir: str | Path) -> Path:
    """``<cache_dir>/detect/<name>-<digest>.csv``; the digest covers the source, the ordered keys and the settings."""
    h = hashlib.sha256(table.source.describe().encode())
    h.update(json.dumps(asdict(settings), sort_keys=True).encode())
    for k in table.keys:
        h.update(k.encode("utf-8", "surrogateescape") + b"\0")
    return Path(cache_dir).expanduser() / "detect" / f"{table.name}-{h.hexdigest()[:16]}.csv"


def detect_landmarks_file(table: FaceTable, settings: DetectorSettings, path: Path, batch_size: int = 64,
                          device: str = "cpu") -> Path:
    """Detect every image of ``table`` (batched) and write the found faces' points to ``path`` (atomically)."""
    detector = shared_detector(settings, device)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LANDMARK_HEADER)
    found_total = 0
    with progress_bar(total=len(table), desc=f"detect {table.name}", unit="img") as bar:
        for start in range(0, len(table), batch_size):
            rows = list(range(start, min(start + batch_size, len(table))))
            ok, images, _ = decode_rows(table, rows)
            found = detector.detect(images)
            for k, i in enumerate(ok):
                if found.found[k]:
                    name = re.sub(r"\.[^./]*$", "", table.keys[i])  # the join attach_landmarks makes
                    w.writerow([name, *(f"{v:.3f}" for v in found.landmarks[k].reshape(-1))])
                    found_total += 1
            bar.update(len(rows))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, buf.getvalue())
    log.info("detect %s: faces in %d of %d images → %s", table.name, found_total, len(table), path)
    return path


def detected_table(table: FaceTable, settings: DetectorSettings, cache_dir: str | Path, max_missing: float,
                   key: str = "dataset") -> FaceTable:
    """``table`` (geometry detect) with the detector's points as landmarks, geometry ``loose``; detected once and
    cached. More images without a face than ``max_missing`` fail with a DataError naming ``key``."""
    path = landmarks_cache_path(table, settings, cache_dir)
    if path.is_file():
        log.info("detect %s: reusing %s", table.name, path)
    else:
        detect_landmarks_file(table, settings, path)
    if len(path.read_text().splitlines()) < 2:
        raise DataError(f"{key}: the face detector found no face in any of the {len(table)} images of "
                        f"{table.source.describe()}; check that they hold faces (or declare their geometry)")
    names, points = read_vggface2_landmarks([path])
    out = attach_landmarks(table, names, points, max_missing, str(path), what=f"{key} images (no face found)",
                           key=key, fix="or check that the images hold faces")
    return dataclasses.replace(out, geometry="loose")
