"""``python -m facemac.audit``: per annotated dataset, draw the audit sample and write the blank template, its design,
the faces as the MAC saw them and the labelling page into ``<run>/audit/`` (docs/audit.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
from omegaconf import DictConfig

from facemac.annotation_table import is_annotation_dir
from facemac.audit.page import write_page
from facemac.audit.sample import AuditSample, draw_sample, read_rows, write_sample
from facemac.errors import ConfigError, DataError
from facemac.faces.crops import CropReader
from facemac.stage import Stage, StageContext, run_stage

log = logging.getLogger(__name__)

AUDIT = Stage("audit")
OUT = "audit"


@dataclass
class AuditFiles:
    """What one dataset's audit wrote."""

    dataset: str
    template: Path
    page: Path
    faces: int
    unreadable: int


def audit(cfg: DictConfig) -> dict[str, AuditFiles]:
    """Sample, render and write every chosen dataset's audit; marks the run done."""
    return run_stage(cfg, AUDIT, _audit)


def annotation_dirs(folder: Path, datasets: list[str] | None) -> dict[str, Path]:
    """{dataset: annotation dir} of a folder of them (or one dir), filtered by ``audit.datasets``."""
    found = {folder.name: folder} if is_annotation_dir(folder) else \
        {p.name: p for p in sorted(folder.iterdir()) if is_annotation_dir(p)} if folder.is_dir() else {}
    if not found:
        raise DataError(f"{folder}: no annotation table (a folder with manifest.json) here or in its sub-folders; "
                        "pass annotations=<run>/annotations of a finished annotate run")
    if datasets:
        unknown = [d for d in datasets if d not in found]
        if unknown:
            raise ConfigError(f"audit.datasets names {unknown}, not annotated in {folder} (there: {sorted(found)})")
        found = {d: found[d] for d in datasets}
    return found


def _audit(ctx: StageContext) -> dict[str, AuditFiles]:
    from facemac.analysis.inputs import resolve_reference

    s = ctx.settings
    acfg = s.audit  # validated by its schema (facemac/settings/audit.py): sizes, quality, roots a mapping
    folder = resolve_reference(str(s.annotations), str(s.paths.log_dir), ctx.tracker)
    datasets = None if acfg.datasets is None else [str(d) for d in (
        [acfg.datasets] if isinstance(acfg.datasets, str) else acfg.datasets)]
    roots = dict(acfg.roots or {})
    face_size = acfg.face_size
    out = ctx.out / OUT
    out.mkdir(parents=True, exist_ok=True)
    log.info("annotations: %s", folder)
    written = {}
    for name, table_dir in annotation_dirs(Path(folder), datasets).items():
        rows = read_rows(table_dir)
        sample = draw_sample(rows, int(acfg.size), seed=s.seed, rare=int(acfg.rare_attributes))
        template = write_sample(sample, out)
        images, bad = _write_faces(sample, table_dir, out, face_size, int(acfg.jpeg_quality), roots.get(name))
        page = write_page(out, sample, template, images)
        written[name] = AuditFiles(name, template, page, len(images) - bad, bad)
        log.info("%s: %d faces in %d strata (%s) → %s; open %s in a browser", name, len(sample.paths),
                 len(sample.stratum_sizes), ", ".join(f"{s}: {v['sampled']}/{v['size']}"
                                                      for s, v in sample.design.strata.items()), template, page)
        if bad:
            log.warning("%s: %d of %d sampled faces could not be redrawn (moved? pass 'audit.roots={%s: <folder>}'); "
                        "the page shows them as missing", name, bad, len(sample.paths), name)
    return written


def _write_faces(sample: AuditSample, table_dir: Path, out: Path, size: int, quality: int,
                 root: str | None) -> tuple[list[str | None], int]:
    """``<out>/<dataset>_faces/<k>.jpg`` in sample order; (relative file names, None where unreadable; count)."""
    faces_dir = out / f"{sample.dataset}_faces"
    faces_dir.mkdir(exist_ok=True)
    crops = CropReader(table_dir, root).crops(sample.paths, size)
    names: list[str | None] = []
    for k, face in enumerate(crops):
        if face is None:
            names.append(None)
            continue
        name = f"{faces_dir.name}/{k:05d}.jpg"
        ok, buf = cv2.imencode(".jpg", face[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {name}")
        (out / name).write_bytes(buf.tobytes())
        names.append(name)
    return names, sum(n is None for n in names)
