"""Redraw annotated faces exactly as the MAC saw them, then enlarge them for a person.

A person judging "Goatee" must see the crop the model classified, not the stored photo: the same reader (format, root,
landmark file), the same geometry (aligned crops scaled to the template, loose photos warped by their landmarks,
``geometry: detect`` photos warped by the 5 points the detector found during annotation, read back from the table's
``detect:*`` columns, never detected again) and the same preprocessing (the checkpoint's crop policy and input size,
which annotation records in the manifest as ``preprocess``). The model input (``CropReader.model_input``) is the
annotation's own code path (``Preprocessor.table_face``, what ``FaceDataset.face`` calls; no torch); only the enlargement for display is added.
An annotation that ran on a GPU (nvJPEG + batched warp, facemac.data.gpu_batch) fed the model the same geometry within
a few grey levels; the redraw always takes the CPU path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facemac.annotation_table import DETECT_PREFIX, PATH, has_detection, verify_table
from facemac.data.decode import decode_image
from facemac.data.preprocess import Preprocessor
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError, FacemacError

log = logging.getLogger(__name__)

POINT_COLUMNS = tuple(f"{DETECT_PREFIX}p{k}{c}" for k in range(1, 6) for c in "xy")


def reader_config(manifest: Mapping[str, Any], root: str | Path | None = None) -> dict[str, Any]:
    """The dataset reader's config the annotation used (manifest ``reader``; older manifests: format, root and
    geometry), with ``root`` replacing the recorded root (the images moved, or a copy on another machine)."""
    cfg = dict(manifest.get("reader") or {"name": manifest.get("dataset"), "format": manifest.get("source_format"),
                                           "root": manifest.get("root"), "geometry": manifest.get("geometry")})
    if cfg.get("geometry") is None:
        cfg.pop("geometry", None)
    if root is not None:
        cfg["root"] = str(Path(root).expanduser())
    return cfg


def manifest_preprocessor(manifest: Mapping[str, Any], where: Path) -> Preprocessor:
    """The model's crop policy: the manifest's ``preprocess`` record, else (older tables) the checkpoint's data_cfg."""
    record = manifest.get("preprocess")
    if record is not None:
        return Preprocessor.from_data_cfg(record)
    ckpt = manifest.get("checkpoint")
    if ckpt and Path(ckpt).is_file():
        from facemac.checkpoint import load_checkpoint

        return Preprocessor.from_data_cfg(load_checkpoint(ckpt)["data_cfg"])
    raise DataError(f"{where}: the manifest does not record the model's crop (preprocess) and its checkpoint "
                    f"{ckpt!r} is not there to read it from; re-annotate with this version, or restore the checkpoint")


class CropReader:
    """One annotated dataset's faces, redrawn on demand; build once (it lists the dataset), read many."""

    def __init__(self, table_dir: str | Path, root: str | Path | None = None):
        self.table_dir = Path(table_dir)
        self.manifest, self.parts = verify_table(self.table_dir, check_sha=False)
        self.pre = manifest_preprocessor(self.manifest, self.table_dir / "manifest.json")
        cfg = reader_config(self.manifest, root)
        try:
            from facemac.data.registry import build_table

            self.table: FaceTable = build_table(cfg, None, prefix=f"{self.table_dir.name} (reader of {self.table_dir})")
        except ConfigError as e:
            raise DataError(f"{self.table_dir}: cannot open the annotated images again ({e}); pass the images' "
                            "current folder as root") from None
        self._rows = {k: i for i, k in enumerate(self.table.keys)}
        self.detected = self.table.geometry == "detect"

    @property
    def input_size(self) -> int:
        """Side of the model's input in pixels."""
        return self.pre.size

    def _detect_points(self, paths: Sequence[str]) -> dict[str, np.ndarray]:
        """{path: [5, 2] points} the detector found when annotating (the table's detect:* columns)."""
        wanted = sorted(set(paths))
        out: dict[str, np.ndarray] = {}
        for part in self.parts:
            f = pq.ParquetFile(part)
            if not has_detection(f.schema_arrow):
                raise DataError(f"{part}: a geometry: detect table without its detect:* columns; re-annotate it")
            t = f.read(columns=[PATH, *POINT_COLUMNS])
            t = t.filter(pc.is_in(t.column(PATH), value_set=pa.array(wanted)))
            pts = np.stack([t.column(c).to_numpy() for c in POINT_COLUMNS], axis=1).reshape(-1, 5, 2)
            out.update(zip(t.column(PATH).to_pylist(), pts.astype(np.float32)))
        return out

    def model_inputs(self, paths: Sequence[str]) -> list[np.ndarray | None]:
        """uint8 S×S×3 RGB of each path exactly as annotation fed the model (S = the checkpoint's input size); None
        for a path the table does not hold or whose image is unreadable now."""
        points = self._detect_points(paths) if self.detected else {}
        out: list[np.ndarray | None] = []
        for p in paths:
            i = self._rows.get(p)
            try:
                if i is None:
                    out.append(None)
                elif self.detected:
                    lm = points.get(p)
                    out.append(None if lm is None else self.pre(decode_image(self.table.source.read(p), p), lm))
                else:
                    out.append(self.pre.table_face(self.table, i))
            except (OSError, FacemacError) as e:
                log.debug("%s: %s unreadable (%s)", self.table_dir.name, p, e)
                out.append(None)
        return out

    def crops(self, paths: Sequence[str], size: int | None = 160) -> list[np.ndarray | None]:
        """The model inputs enlarged (or shrunk) to ``size`` px for a person; ``size=None``: as the model saw them."""
        return [None if f is None else enlarge(f, size) for f in self.model_inputs(paths)]


def enlarge(face: np.ndarray, size: int | None) -> np.ndarray:
    """A model input at a size a person can judge (bicubic up, area down); unchanged at its own size."""
    if size is None or face.shape[:2] == (size, size):
        return face
    interp = cv2.INTER_CUBIC if size > face.shape[0] else cv2.INTER_AREA
    return cv2.resize(face, (int(size), int(size)), interpolation=interp)


def load_crops(table_dir: Path, paths: Sequence[str], size: int | None = 160,
               root: Path | None = None) -> list[np.ndarray | None]:
    """uint8 H×W×3 RGB of each annotated row as the MAC saw it, enlarged to ``size`` (None: the model's own input
    size); None for rows it cannot read. ``root``: where the images are now, when not where annotation read them."""
    return CropReader(table_dir, root).crops(paths, size)


__all__ = ["CropReader", "load_crops", "enlarge", "reader_config", "manifest_preprocessor"]
