"""Faces for the W&B app, next to the numbers: a seeded sample of annotated faces (the annotate run) and the audited
faces with both labels, the person's and the MAC's (the analysis). Bounded, built as frames with an ``image`` column
of uint8 crops (facemac.faces.load_crops) and logged through the tracker (facemac/tracking.py imports wandb)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facemac.annotation_table import IDENTITY, PATH, read_manifest

log = logging.getLogger(__name__)

IMAGE = "image"
CropLoader = Callable[..., list]


def _loader() -> CropLoader:
    from facemac.faces.crops import load_crops

    return load_crops


def spread(count: int, sizes: Sequence[int]) -> list[int]:
    """``count`` split over datasets as evenly as their sizes allow (a small dataset's unused share goes to the
    others); sums to min(count, sum(sizes))."""
    take = [0] * len(sizes)
    left = min(count, sum(sizes))
    while left > 0:
        open_ = [i for i, n in enumerate(sizes) if take[i] < n]
        share = max(1, left // len(open_))
        for i in open_:
            add = min(share, sizes[i] - take[i], left)
            take[i] += add
            left -= add
            if left == 0:
                break
    return take


@dataclass(frozen=True)
class SampledTable:
    """One annotation dir to sample from (name and group as the annotate run knows them)."""

    name: str
    group: str
    directory: Path


def read_rows(directory: Path, paths: Sequence[str] | None = None, rows: Sequence[int] | None = None,
              attributes: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of an annotation table chosen by ``paths`` or by global row index (``rows``): path, identity and the
    attribute probabilities, one part in memory at a time."""
    manifest = read_manifest(directory)
    attributes = list(attributes if attributes is not None else manifest["attributes"])
    frames, offset = [], 0
    wanted_rows = np.sort(np.asarray(rows, np.int64)) if rows is not None else None
    wanted_paths = pa.array(list(paths), pa.string()) if paths is not None else None
    for entry in manifest["parts"]:
        n = int(entry["rows"])
        if wanted_rows is not None:
            local = wanted_rows[(wanted_rows >= offset) & (wanted_rows < offset + n)] - offset
            offset += n
            if not len(local):
                continue
        f = pq.ParquetFile(directory / entry["file"])
        cols = [PATH, *([IDENTITY] if IDENTITY in f.schema_arrow.names else []), *attributes]
        t = f.read(columns=cols)
        t = t.take(pa.array(local)) if wanted_rows is not None else t.filter(pc.is_in(t.column(PATH), wanted_paths))
        frames.append(t.to_pandas())
    if not frames:
        return pd.DataFrame(columns=[PATH, IDENTITY, *attributes])
    out = pd.concat(frames, ignore_index=True)
    if IDENTITY not in out:
        out.insert(1, IDENTITY, None)
    return out


def sampled_faces_frame(tables: Sequence[SampledTable], count: int, seed: int, size: int,
                        loader: CropLoader | None = None) -> pd.DataFrame:
    """``count`` faces drawn at random (seeded) over the tables, spread evenly: image, dataset, group, path,
    identity and the MAC's probability per attribute (an unreadable face keeps its row with an empty image)."""
    loader = loader or _loader()
    rng = np.random.default_rng(seed)
    sizes = [int(read_manifest(t.directory)["num_images"]) for t in tables]
    frames = []
    for t, k in zip(tables, spread(count, sizes)):
        if k == 0:
            continue
        rows = read_rows(t.directory, rows=rng.choice(sizes[tables.index(t)], size=k, replace=False))
        crops = loader(t.directory, list(rows[PATH]), size=size)
        rows.insert(0, IMAGE, crops)
        rows.insert(1, "dataset", t.name)
        rows.insert(2, "group", t.group)
        frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[IMAGE, "dataset", "group"])


def audited_faces_frame(audits: Mapping, tables: Mapping, limit: int = 300, size: int = 112,
                        loader: CropLoader | None = None) -> pd.DataFrame:
    """The audited faces with both labels, at most ``limit`` spread over datasets (in each audit's own order, itself
    a random sample): image, dataset, path, identity, then per judged attribute ``<attr>:person`` (1 / 0, empty when
    not judged), ``<attr>:mac`` (its probability) and ``<attr>:mac_label`` (probability > the analysis threshold).

    ``audits``: {dataset: facemac.audit.format.Audit}; ``tables``: {dataset: the analysis input (DatasetInput: its
    directory and thresholds)} — the annotation the audit is compared with."""
    loader = loader or _loader()
    names = [n for n in audits if n in tables]
    frames = []
    for name, k in zip(names, spread(limit, [len(audits[n]) for n in names])):
        audit, table = audits[name], tables[name]
        paths = list(audit.paths[:k])
        mac = read_rows(Path(table.path), paths=paths, attributes=audit.attributes).set_index(PATH).reindex(paths)
        frame = pd.DataFrame({IMAGE: loader(Path(table.path), paths, size=size), "dataset": name, "path": paths,
                              "identity": (audit.identities[:k] if audit.identities is not None
                                           else mac[IDENTITY].tolist())})
        for j, a in enumerate(audit.attributes):
            person = np.where(audit.judged[:k, j], audit.labels[:k, j], np.nan)
            p = mac[a].to_numpy(np.float64)
            frame[f"{a}:person"] = pd.array(np.where(np.isnan(person), pd.NA, person), dtype="Int64")
            frame[f"{a}:mac"] = p
            frame[f"{a}:mac_label"] = pd.array(np.where(np.isnan(p), pd.NA, p > table.thresholds.get(a, 0.5)),
                                               dtype="Int64")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[IMAGE, "dataset", "path"])


def audited_faces_table(audits: Mapping, tables: Mapping, limit: int = 300, size: int = 112,
                        loader: CropLoader | None = None):
    """``audited_faces_frame`` as a ``wandb.Table`` (images as wandb.Image), for ``tracker.run.log`` or the lead's
    wiring; the analysis logs it itself as ``audited_faces`` (facemac.analysis.logged.AUDITED_FACES)."""
    from facemac.tracking import images_table

    return images_table(audited_faces_frame(audits, tables, limit, size, loader), (IMAGE,))
