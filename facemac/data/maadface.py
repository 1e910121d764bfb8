"""MAAD-Face (`MAAD_Face.csv` over VGGFace2 images): 47 attributes coded 1 / -1 / 0, where 0 means *undefined*.

Undefined cells get mask False (and label 0, which the mask hides): they are never negatives. MAAD-Face has no
official split, so identities are assigned to train/val/test by a seeded hash of the identity string: deterministic
across machines and runs, and no person appears in two splits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.data.labelcsv import check_field_counts, header_columns, not_utf8, numeric_columns
from facemac.data.layout import require_dir, require_file, select_attributes
from facemac.data.sources import FileSource
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError

log = logging.getLogger(__name__)

MAADFACE_LAYOUT = ("a CSV with a header 'Filename,Identity,<47 attributes>' and cells 1 / -1 / 0 (0 = undefined), "
                   "Filename relative to the VGGFace2 images folder (n000002/0001_01.jpg)")
IMAGE_DIR_GUESSES = ("images", "train", "data/train", "vggface2/train")
CHUNK_ROWS = 262_144
# VGGFace2's 5-point landmarks (MTCNN, in pixels of each image file), one CSV per VGGFace2 split.
LANDMARK_FILES = ("loose_landmark_train.csv", "loose_landmark_test.csv")
LANDMARK_DIR = "bb_landmark"
LANDMARK_HEADER = ("NAME_ID", "P1X", "P1Y", "P2X", "P2Y", "P3X", "P3Y", "P4X", "P4Y", "P5X", "P5Y")
LANDMARK_LAYOUT = ("VGGFace2's bb_landmark/loose_landmark_train.csv / loose_landmark_test.csv: a header "
                   "NAME_ID,P1X,P1Y,...,P5X,P5Y and rows '\"n000001/0001_01\",75.81,110.21,...' (image name without "
                   "extension; left eye, right eye, nose, left and right mouth corner in pixels of the image)")
# |coordinate| beyond this is no pixel position of a face image (a unit or parsing error upstream)
MAX_COORDINATE = 1e5


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


def find_landmark_files(root: Path, images: Path) -> list[Path]:
    """VGGFace2's landmark CSVs in the first ``bb_landmark/`` folder (under the MAAD-Face root, beside the images
    folder, or in ``vggface2/``) that holds any; [] when there is none."""
    for folder in (root / LANDMARK_DIR, images.parent / LANDMARK_DIR, root / "vggface2" / LANDMARK_DIR):
        found = [folder / f for f in LANDMARK_FILES if (folder / f).is_file()]
        if found:
            return found
    return []


def read_vggface2_landmarks(paths: Sequence[str | Path]) -> tuple[list[str], np.ndarray]:
    """(image names without extension, float32 [N, 5, 2] points) of VGGFace2 landmark CSVs, files concatenated.

    Refused with a DataError naming file and line: a header other than NAME_ID,P1X,...,P5Y, a row with the wrong number
    of fields, an empty name, a coordinate that is missing, not a number, not finite or beyond MAX_COORDINATE, and a
    name listed twice (in one file or across the train/test files)."""
    names: list[str] = []
    points: list[np.ndarray] = []
    where: list[tuple[Path, int]] = []  # (file, index of its first row in ``names``)
    for path in paths:
        path = require_file(path, LANDMARK_LAYOUT)
        check_field_counts(path, layout=LANDMARK_LAYOUT)
        header = header_columns(path)
        if [h.upper() for h in header] != list(LANDMARK_HEADER):
            raise DataError(f"{path}, line 1: header {','.join(header)[:120]!r}; expected {LANDMARK_LAYOUT}")
        try:
            df = pd.read_csv(path, dtype={header[0]: str}, keep_default_na=False, na_values=[""],
                             skipinitialspace=True, encoding="utf-8-sig", engine="c")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(f"{path}: cannot be parsed ({str(e).strip()}); expected {LANDMARK_LAYOUT}") from None
        except UnicodeDecodeError:
            raise not_utf8(path, None, LANDMARK_LAYOUT) from None
        if len(df) == 0:
            raise DataError(f"{path}: header only, no rows; expected {LANDMARK_LAYOUT}")
        df.columns = list(LANDMARK_HEADER)
        xy = numeric_columns(df, LANDMARK_HEADER[1:], path, LANDMARK_LAYOUT)
        bad = ~np.isfinite(xy) | (np.abs(xy) > MAX_COORDINATE)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            what = "missing" if np.isnan(xy[r, c]) else f"{xy[r, c]:g} is no pixel coordinate"
            raise DataError(f"{path}, line {r + 2}, column {LANDMARK_HEADER[c + 1]}: {what}; "
                            f"expected {LANDMARK_LAYOUT}")
        keys = df["NAME_ID"].fillna("").str.strip().str.replace("\\", "/", regex=False)
        keys = keys.str.replace(r"\.(jpe?g|png)$", "", case=False, regex=True).tolist()
        if "" in keys:
            raise DataError(f"{path}, line {keys.index('') + 2}: empty NAME_ID; expected {LANDMARK_LAYOUT}")
        where.append((path, len(names)))
        names += keys
        points.append(xy.reshape(-1, 5, 2))
    dup = pd.Series(names, dtype=object).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        j = names.index(names[i])

        def line(k: int) -> str:
            path, start = next((p, s) for p, s in reversed(where) if s <= k)
            return f"{path}, line {k - start + 2}"

        raise DataError(f"{line(i)}: {names[i]} already has landmarks ({line(j)}); each image needs one row in "
                        f"{' or '.join(LANDMARK_FILES)}")
    return names, (np.concatenate(points) if points else np.empty((0, 5, 2), np.float32))


def attach_landmarks(table: FaceTable, names: list[str], points: np.ndarray, max_missing: float,
                     sources: str, what: str = "MAAD-Face images", key: str = "dataset",
                     fix: str = "or use dataset.align=resize") -> FaceTable:
    """``table`` with each row's 5 points, joined on the file name without extension. Rows without landmarks (or with
    all points in one spot) are skipped and logged with a count and examples; a larger share than ``max_missing``
    fails, as unreadable images do. ``what``, ``key`` and ``fix`` word the messages for the dataset at hand."""
    stems = pd.Series(table.keys, dtype=object).str.replace(r"\.[^./]*$", "", regex=True)
    pos = pd.Index(names).get_indexer(stems)
    found = pos >= 0
    pts = np.zeros((len(table), 5, 2), np.float32)
    pts[found] = points[pos[found]]
    spread = pts.reshape(len(table), -1).std(axis=1) if len(table) else np.zeros(0)
    usable = found & (spread > 0.5)
    missing = np.flatnonzero(~usable)
    if len(missing):
        share = len(missing) / max(len(table), 1)
        examples = ", ".join(table.keys[i] for i in missing[:5])
        msg = (f"{len(missing)} of {len(table)} {what} ({share:.2%}) have no usable landmarks in {sources} "
               f"(e.g. {examples})")
        if share > max_missing:
            raise DataError(f"{msg}: more than {key}.max_missing_landmarks={max_missing}; point {key}.landmarks "
                            f"at the files that cover them, {fix}")
        log.warning("%s; they are skipped", msg)
    return dataclasses.replace(table.subset(np.flatnonzero(usable)), landmarks=pts[usable])


def _landmark_paths(root: Path, images: Path, landmarks) -> list[Path]:
    """dataset.landmarks → files: ``auto`` (found under the root), a folder holding the CSVs, a file, or a list."""
    if landmarks in ("auto", True):
        found = find_landmark_files(root, images)
        if not found:
            raise ConfigError(f"dataset.landmarks=auto: no {LANDMARK_DIR}/{' or '.join(LANDMARK_FILES)} under "
                              f"{root} or beside {images}; set dataset.landmarks=<folder or files> ({LANDMARK_LAYOUT}), or opt "
                              "in to the unaligned whole-image resize with dataset.align=resize")
        return found
    items = [landmarks] if isinstance(landmarks, (str, Path)) else list(landmarks)
    out: list[Path] = []
    for item in items:
        p = Path(str(item)).expanduser()
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            files = [p / f for f in LANDMARK_FILES if (p / f).is_file()]
            if not files:
                raise ConfigError(f"dataset.landmarks={item}: {p} holds none of {', '.join(LANDMARK_FILES)}")
            out += files
        elif p.is_file():
            out.append(p)
        else:
            raise ConfigError(f"dataset.landmarks={item}: {p} does not exist; expected {LANDMARK_LAYOUT}")
    return out


def read_maadface(root: str | Path, csv: str | Path = "MAAD_Face.csv", images_dir: str | Path | None = None,
                  val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                  attributes: Sequence[str] | None = None, geometry: str = "loose",
                  name: str = "maadface", landmarks=None, max_missing_landmarks: float = 0.01) -> FaceTable:
    """FaceTable of MAAD-Face: labels 0/1 with undefined cells masked, identity-disjoint seeded splits, and (with
    ``landmarks``: ``auto``, a folder, a file or a list of files) VGGFace2's 5 points for the ArcFace warp."""
    if not 0.0 <= float(max_missing_landmarks) <= 1.0:
        raise ConfigError(f"dataset.max_missing_landmarks={max_missing_landmarks!r} must be a share in [0, 1]")
    root = require_dir(root, f"a folder holding the MAAD-Face CSV and the VGGFace2 images ({MAADFACE_LAYOUT})")
    images = _find_images_dir(root, images_dir)
    paths = _landmark_paths(root, images, landmarks) if landmarks not in (None, False, "") else []
    table = read_maadface_labels(root / csv, attributes, name)  # checks that the CSV exists
    table = dataclasses.replace(table, source=FileSource(images), geometry=geometry,
                                splits=identity_splits(table.identities, val_fraction, test_fraction, seed))
    if paths:
        names, points = read_vggface2_landmarks(paths)
        table = attach_landmarks(table, names, points, float(max_missing_landmarks),
                                 " + ".join(str(p) for p in paths))
    return table
