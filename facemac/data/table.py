"""FaceTable: the one index every on-disk format is parsed into, so training and annotation never see a format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from facemac.errors import ConfigError

# Stored-image geometries a table can declare. "arcface_112" = already aligned to the template (FR datasets, demo: any
# square size, or SphereFace's 112x96); "loose" = photos whose 5 landmarks the table holds; "detect" = photos whose
# face a detector finds (facemac.data.detect); "unknown" = not said (annotation then needs landmarks).
GEOMETRIES = ("arcface_112", "loose", "detect", "unknown")


def check_geometry_name(geometry: str, dataset: str) -> None:
    """The one check of a declared geometry's spelling (FaceTable runs it for every reader)."""
    if geometry not in GEOMETRIES:
        raise ConfigError(f"dataset {dataset!r}: geometry={geometry!r} is unknown; choose one of "
                          f"{', '.join(GEOMETRIES)} (the dataset's geometry key)")


SPLITS = {"train": 0, "val": 1, "test": 2}


class ImageSource(Protocol):
    """Reads the encoded bytes of one image by its key (a relative path or a packed-record key)."""

    def read(self, key: str) -> bytes: ...

    def describe(self) -> str: ...


@dataclass
class FaceTable:
    """Index of one face dataset: which images exist and what is known about each.

    Arrays are row-aligned with ``keys``. ``labels`` holds 0/1 floats; ``mask`` is True where a label is defined
    (MAAD-Face's 0-coded cells are False). ``landmarks`` are 5 points (eyes, nose, mouth corners) in pixels of the
    stored image, used by the ArcFace alignment policy.
    """

    name: str
    source: ImageSource
    keys: list[str]
    attributes: list[str] = field(default_factory=list)
    identities: list[str] | None = None
    labels: np.ndarray | None = None  # float32 [N, A]
    mask: np.ndarray | None = None  # bool [N, A]
    splits: np.ndarray | None = None  # int8 [N], values of SPLITS
    landmarks: np.ndarray | None = None  # float32 [N, 5, 2]
    geometry: str = "unknown"  # how stored images are cropped: "loose", "arcface_112", ...

    def __len__(self) -> int:
        return len(self.keys)

    def __post_init__(self) -> None:
        check_geometry_name(self.geometry, self.name)
        n = len(self.keys)
        for name in ("labels", "mask", "splits", "landmarks"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"FaceTable {self.name!r}: {name} has {len(arr)} rows, keys has {n}")
        if self.identities is not None and len(self.identities) != n:
            raise ValueError(f"FaceTable {self.name!r}: identities has {len(self.identities)} rows, keys has {n}")
        if self.labels is not None and self.labels.shape[1] != len(self.attributes):
            raise ValueError(f"FaceTable {self.name!r}: labels has {self.labels.shape[1]} columns, "
                             f"attributes has {len(self.attributes)}")
        if self.labels is not None and self.mask is None:
            self.mask = np.ones(self.labels.shape, dtype=bool)

    def subset(self, rows: np.ndarray | list[int]) -> FaceTable:
        """Rows by position (a split, a rank's shard) with every aligned array sliced the same way."""
        rows = np.asarray(rows, dtype=np.int64)
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return FaceTable(
            name=self.name, source=self.source, keys=[self.keys[i] for i in rows], attributes=list(self.attributes),
            identities=None if self.identities is None else [self.identities[i] for i in rows],
            labels=pick(self.labels), mask=pick(self.mask), splits=pick(self.splits), landmarks=pick(self.landmarks),
            geometry=self.geometry,
        )

    def split(self, name: str) -> FaceTable:
        """The rows of one named split ("train", "val", "test")."""
        if self.splits is None:
            raise ValueError(f"FaceTable {self.name!r} has no split column")
        return self.subset(np.flatnonzero(self.splits == SPLITS[name]))
