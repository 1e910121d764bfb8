"""MAAD-Face (`MAAD_Face.csv` over VGGFace2 images): 47 attributes coded 1 / -1 / 0, where 0 means *undefined*.

Undefined cells get mask False (and label 0, which the mask hides): they are never negatives. MAAD-Face has no
official split, so identities are assigned to train/val/test by a seeded hash of the identity string: deterministic
across machines and runs, and no person appears in two splits.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.data.labelcsv import check_field_counts, header_columns, not_utf8, numeric_columns
from facemac.data.layout import require_dir, require_file, select_attributes
from facemac.data.preprocess import GEOMETRIES
from facemac.data.sources import FileSource
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError

MAADFACE_LAYOUT = ("a CSV with a header 'Filename,Identity,<47 attributes>' and cells 1 / -1 / 0 (0 = undefined), "
                   "Filename relative to the VGGFace2 images folder (n000002/0001_01.jpg)")
IMAGE_DIR_GUESSES = ("images", "train", "data/train", "vggface2/train")
CHUNK_ROWS = 262_144


@dataclass
class MaadChunk:
    """Consecutive rows of MAAD_Face.csv: file names, identities, int8 codes 1 / -1 / 0 [rows, attributes]."""

    keys: list[str]
    identities: list[str]
    codes: np.ndarray


def identity_splits(identities: Sequence[str] | np.ndarray, val_fraction: float, test_fraction: float,
                    seed: int = 0) -> np.ndarray:
    """int8 split per row (0/1/2) from a seeded hash of each identity: every identity lands in exactly one split."""
    for key, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= float(v) < 1.0:
            raise ConfigError(f"dataset.{key}={v!r} must be in [0, 1)")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(f"dataset.val_fraction + dataset.test_fraction = {val_fraction + test_fraction} leaves no "
                          "identities for training; keep the sum below 1")
    codes, uniques = pd.factorize(pd.Series(identities, dtype=object), sort=False)
    u = np.array([int.from_bytes(hashlib.blake2b(f"{seed}\0{ident}".encode(), digest_size=8).digest(), "little")
                  for ident in uniques], dtype=np.float64) / 2.0 ** 64
    per_identity = np.where(u < test_fraction, 2, np.where(u < test_fraction + val_fraction, 1, 0)).astype(np.int8)
    return per_identity[codes]


def _find_images_dir(root: Path, images_dir: str | Path | None) -> Path:
    if images_dir is not None:
        return require_dir(root / images_dir, f"the VGGFace2 images folder ({MAADFACE_LAYOUT}); set dataset.images_dir")
    for guess in IMAGE_DIR_GUESSES:
        if (root / guess).is_dir():
            return root / guess
    return root


def _column(header: list[str], name: str, path: Path) -> str:
    for c in header:
        if c.lower() == name.lower():
            return c
    raise DataError(f"{path}: no {name!r} column (header starts {', '.join(header[:4])}); "
                    f"expected {MAADFACE_LAYOUT}")


def maadface_chunks(path: str | Path, attributes: Sequence[str] | None = None,
                    chunk_rows: int = CHUNK_ROWS) -> tuple[list[str], Iterator[MaadChunk]]:
    """(attribute names, chunks of rows) of ``MAAD_Face.csv``; the header is checked now, rows as they are read.

    Each chunk holds ``keys``, ``identities`` and ``codes`` (int8 1 / -1 / 0 per attribute). Streaming keeps a
    3.3M-row file from being held as pandas columns (~5 GB at once): ``read_maadface_labels`` concatenates the chunks,
    the analysis counts them one by one."""
    path = require_file(path, MAADFACE_LAYOUT)
    check_field_counts(path, layout=MAADFACE_LAYOUT)
    header = header_columns(path)
    if "" in header:
        raise DataError(f"{path}, line 1: column {header.index('') + 1} has no name (a trailing or doubled comma?); "
                        f"expected {MAADFACE_LAYOUT}")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(f"{path}, line 1: column name(s) {', '.join(repr(c) for c in dupes)} appear more than once; "
                        f"expected {MAADFACE_LAYOUT}")
    fcol, icol = _column(header, "Filename", path), _column(header, "Identity", path)
    attr_cols = [c for c in header if c not in (fcol, icol)]
    if not attr_cols:
        raise DataError(f"{path}: no attribute columns after Filename and Identity; expected {MAADFACE_LAYOUT}")
    cols = [attr_cols[i] for i in select_attributes(attr_cols, attributes, str(path))]

    def rows() -> Iterator[MaadChunk]:
        done = 0
        try:
            for chunk in pd.read_csv(path, skipinitialspace=True, dtype={fcol: str, icol: str}, keep_default_na=False,
                                     na_values=[""], engine="c", chunksize=chunk_rows):
                chunk.columns = header
                first_line = done + 2
                num = numeric_columns(chunk, cols, path, MAADFACE_LAYOUT, first_line)
                bad = ~((num == 1) | (num == -1) | (num == 0))
                if bad.any():
                    r, c = np.argwhere(bad)[0]
                    what = "missing" if np.isnan(num[r, c]) else f"{num[r, c]:g} is not 1, -1 or 0"
                    raise DataError(f"{path}, line {r + first_line}, column {cols[c]!r}: {what}; "
                                    f"expected {MAADFACE_LAYOUT}")
                keys = chunk[fcol].fillna("").str.strip().str.replace("\\", "/").tolist()
                if "" in keys:
                    raise DataError(f"{path}, line {keys.index('') + first_line}: empty {fcol}; "
                                    f"expected {MAADFACE_LAYOUT}")
                done += len(keys)
                yield MaadChunk(keys, chunk[icol].fillna("").str.strip().tolist(), num.astype(np.int8))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(f"{path}: cannot be parsed ({e}); expected {MAADFACE_LAYOUT}") from None
        except UnicodeDecodeError:
            raise not_utf8(path, None, MAADFACE_LAYOUT) from None
        if not done:
            raise DataError(f"{path}: header only, no rows; expected {MAADFACE_LAYOUT}")

    return cols, rows()


def read_maadface_labels(path: str | Path, attributes: Sequence[str] | None = None,
                         name: str = "maadface") -> FaceTable:
    """The labels of ``MAAD_Face.csv`` without its images or splits: 0/1 labels, undefined (0) cells masked,
    identities."""
    cols, chunks = maadface_chunks(path, attributes)
    keys: list[str] = []
    identities: list[str] = []
    codes = []
    for c in chunks:
        keys += c.keys
        identities += c.identities
        codes.append(c.codes)
    num = np.concatenate(codes)
    return FaceTable(name=name, source=FileSource(Path(path).parent), keys=keys, attributes=cols,
                     identities=identities, labels=(num == 1).astype(np.float32), mask=num != 0)


def read_maadface(root: str | Path, csv: str | Path = "MAAD_Face.csv", images_dir: str | Path | None = None,
                  val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                  attributes: Sequence[str] | None = None, geometry: str = "loose",
                  name: str = "maadface") -> FaceTable:
    """FaceTable of MAAD-Face: labels 0/1 with undefined cells masked, identity-disjoint seeded splits."""
    if geometry not in GEOMETRIES:
        raise ConfigError(f"dataset.geometry={geometry!r} is unknown; choose one of {', '.join(GEOMETRIES)}")
    root = require_dir(root, f"a folder holding the MAAD-Face CSV and the VGGFace2 images ({MAADFACE_LAYOUT})")
    images = _find_images_dir(root, images_dir)
    table = read_maadface_labels(root / csv, attributes, name)  # checks that the CSV exists
    return dataclasses.replace(table, source=FileSource(images), geometry=geometry,
                               splits=identity_splits(table.identities, val_fraction, test_fraction, seed))
