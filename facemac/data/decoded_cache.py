"""Decoded-face cache: a table's faces, already brought to the model's input geometry, in one memory-mapped uint8 file.

Decoding and warping cost more CPU than a small model's forward+backward; a cache pays them once per
(dataset, split, preprocessing) so later epochs and sweeps only copy bytes (augmentation still runs on top).

Layout: ``<cache_dir>/decoded/<name>/`` holding ``images.npy`` ([N, S, S, 3] uint8, opened with ``mmap_mode="r"``)
and ``meta.json`` (fingerprint, count, size, unreadable rows with their reasons). The fingerprint hashes the keys,
labels, mask, landmarks, the preprocessing parameters and the source (its description and, for files, every file's
size and mtime), so a changed label, image or setting makes the cache stale and it is rebuilt. A build is written into a
temporary sibling folder and renamed into place, so a killed build never leaves a half-written cache behind. One
process builds a given cache at a time (a flock on ``.locks/<name>.lock`` beside it): sweep jobs that start together wait
for the first one's build and reuse it (both: facemac.atomic.build_folder_once).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from facemac.atomic import build_folder_once
from facemac.data.dataset import FaceDataset, FaceItems, collate_faces
from facemac.data.decode import ImageDecodeError
from facemac.data.preprocess import Preprocessor
from facemac.data.sources import FileSource
from facemac.data.table import FaceTable
from facemac.errors import DataError
from facemac.progress import progress_bar

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when the layout or the preprocessing code changes what a cached face looks like
IMAGES, META = "images.npy", "meta.json"


def _source_fingerprint(table: FaceTable, h: Any) -> None:
    """The source's identity: its description, plus size and mtime of every file (FileSource) or of its own files."""
    src = table.source
    h.update(src.describe().encode())
    if isinstance(src, FileSource):
        for k in table.keys:
            try:
                st = os.stat(src.root / k)
                h.update(f"{st.st_size}:{st.st_mtime_ns};".encode())
            except OSError:
                h.update(b"missing;")
        return
    for value in vars(src).values() if hasattr(src, "__dict__") else ():  # packed formats: stat their files
        if isinstance(value, (str, Path)) and Path(value).is_file():
            st = Path(value).stat()
            h.update(f"{value}:{st.st_size}:{st.st_mtime_ns};".encode())


def fingerprint(table: FaceTable, preprocess: Preprocessor) -> str:
    """sha256 over everything that decides the cached bytes and the labels served with them."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, "align": preprocess.align, "size": preprocess.size,
                         "reduced_decode": preprocess.reduced_decode,
                         "n": len(table), "geometry": table.geometry, "attributes": list(table.attributes)}).encode())
    h.update("\n".join(table.keys).encode())
    for arr in (table.labels, table.mask, table.landmarks):
        h.update(b"none" if arr is None else np.ascontiguousarray(arr).tobytes())
    _source_fingerprint(table, h)
    return h.hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "cache"


class DecodedCache:
    """An opened, validated cache: ``images`` (read-only memmap), ``ok`` per row, ``reasons`` for unreadable rows."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.meta = meta
        self.size = int(meta["size"])
        self.count = int(meta["count"])
        self.reasons = {int(i): str(r) for i, r in meta["failures"]}
        self.ok = np.ones(self.count, dtype=bool)
        self.ok[list(self.reasons)] = False
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        """Opened lazily (per process: a memmap must not be pickled into DataLoader workers)."""
        if self._images is None:
            self._images = np.load(self.path / IMAGES, mmap_mode="r")
        return self._images

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_images": None}

    @classmethod
    def open(cls, path: Path, expected: str | None = None) -> DecodedCache | None:
        """The cache at ``path`` if it is complete and (when given) has the expected fingerprint, else None."""
        try:
            meta = json.loads((path / META).read_text())
            arr = np.load(path / IMAGES, mmap_mode="r")
        except (OSError, ValueError):
            return None
        s = int(meta.get("size", -1))
        if (expected is not None and meta.get("fingerprint") != expected) or arr.dtype != np.uint8 \
                or arr.shape != (int(meta.get("count", -1)), s, s, 3):
            return None
        return cls(path, meta)


def cache_path(cache_dir: str | Path, name: str) -> Path:
    return Path(str(cache_dir)).expanduser() / "decoded" / _safe(name)


def open_or_build(table: FaceTable, preprocess: Preprocessor, cache_dir: str | Path, name: str,
                  workers: int = 0, batch_size: int = 256, progress: bool = True) -> DecodedCache:
    """The decoded cache of ``table`` under ``<cache_dir>/decoded/<name>``: reused when current, else (re)built."""
    path = cache_path(cache_dir, name)
    fp = fingerprint(table, preprocess)
    cache = DecodedCache.open(path, fp)
    if cache is not None:
        log.info("decoded cache: reusing %s (%d faces)", path, cache.count)
        return cache

    def current(folder: Path) -> bool:
        return DecodedCache.open(folder, fp) is not None

    def build(tmp: Path) -> None:
        if path.exists():
            log.info("decoded cache: %s is stale (data or preprocessing changed): rebuilding", path)
        _build(table, preprocess, tmp, fp, workers, batch_size, progress, path.name)

    # one builder per cache: sweep jobs started together wait for it, then reuse its result
    build_folder_once(path, current, build, "decoded cache")
    cache = DecodedCache.open(path, fp)
    if cache is None:  # pragma: no cover - only if another process replaced it with something else meanwhile
        raise DataError(f"decoded cache {path} could not be read back after building it")
    if cache.reasons:
        log.warning("decoded cache %s: %d of %d images unreadable (recorded; skipped like the uncached path)",
                    path, len(cache.reasons), cache.count)
    return cache


def _build(table: FaceTable, preprocess: Preprocessor, folder: Path, fp: str, workers: int, batch_size: int,
           progress: bool, name: str) -> None:
    """Decode + warp every row once (DataLoader workers) into ``folder`` (a temporary one, renamed into place)."""
    n, s = len(table), preprocess.size
    failures: list[tuple[int, str]] = []
    images = np.lib.format.open_memmap(folder / IMAGES, mode="w+", dtype=np.uint8, shape=(n, s, s, 3))
    _reserve(folder / IMAGES)
    # its own generator: workers' seeds drawn from torch's global RNG would make a run that builds the cache
    # train differently (dropout, shuffling) from one that finds it built
    loader = DataLoader(FaceDataset(table, preprocess, None), batch_size=batch_size, num_workers=workers,
                        collate_fn=collate_faces, generator=torch.Generator().manual_seed(0))
    with progress_bar(total=n, desc=f"decoded cache {name}", unit="img", disable=not progress) as bar:
        for batch in loader:
            idx = batch["index"].numpy()
            if len(idx):
                images[idx] = batch["image"].permute(0, 2, 3, 1).numpy()
            for i, reason in batch["failures"]:
                images[i] = 0
                failures.append((int(i), str(reason)))
            bar.update(len(idx) + len(batch["failures"]))
    images.flush()
    del images
    failures.sort()
    meta = {"fingerprint": fp, "count": n, "size": s, "align": preprocess.align, "table": table.name,
            "version": CACHE_VERSION, "failures": failures}
    (folder / META).write_text(json.dumps(meta))


class CacheSpaceError(DataError):
    """The cache does not fit where it would be written (disk full or quota exceeded)."""


def _reserve(file: Path) -> None:
    """Allocate the memmap's blocks now: a full disk is then one clear error before any decoding, not a SIGBUS when
    a page of the sparse file is first written. File systems without fallocate keep the sparse file."""
    size = file.stat().st_size
    try:
        with open(file, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk, or a user quota (HPC home folders) that df hides
            raise CacheSpaceError(f"decoded cache: no room for {size / 2 ** 30:.2f} GiB under {file.parent.parent} "
                                  f"({e.strerror}); free space, point paths.cache_dir elsewhere or set "
                                  "train.decoded_cache=false") from None
    except AttributeError:  # pragma: no cover - no posix_fallocate on this platform
        pass


class CachedFaceDataset(FaceItems):
    """FaceDataset's items, served from a DecodedCache: copy the cached face, augment, CHW uint8 tensor."""

    def __init__(self, table: FaceTable, cache: DecodedCache, augment: Callable[..., Any] | None = None):
        if cache.count != len(table):
            raise DataError(f"decoded cache {cache.path} holds {cache.count} faces, table {table.name!r} {len(table)}")
        super().__init__(table, augment)
        self.cache = cache

    def face(self, i: int) -> np.ndarray:
        if not self.cache.ok[i]:
            raise ImageDecodeError(self.table.keys[i], self.cache.reasons[i])  # the reason recorded at build time
        return np.array(self.cache.images[i])  # copy out of the page cache: augmentation may write in place
