"""Identity folders (`root/<identity>/*.jpg`, or `root/<group>/<identity>/*.jpg` like BUPT's race folders).

This is how most face-recognition training sets ship (CASIA-WebFace, BUPT, DCFace, IDiff-Face, ...). The scan uses
``os.scandir`` only (the directory entry's type, no per-file stat), so a million files index in seconds.

A flat folder (`root/*.jpg`, as some GAN sets ship) is read too, as depth 0: its images have no identity. It is
accepted rather than sent to ``format: filelist`` because a list of the same files would carry no more information;
the log says the identities are unknown (the analysis then resamples images, not identities).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from facemac.data.layout import IMAGE_EXTENSIONS, require_dir
from facemac.data.sources import FileSource
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError
from facemac.progress import progress_bar

log = logging.getLogger(__name__)

FOLDERS_LAYOUT = ("identity folders: <root>/<identity>/*.jpg (or .png, ...), one level deeper "
                  "<root>/<group>/<identity>/*.jpg, or a flat folder <root>/*.jpg (depth 0, no identities)")


def _entries(path: str) -> tuple[list[str], list[str]]:
    """(sub-folder names, file names) of one folder; hidden entries are skipped."""
    dirs, files = [], []
    with os.scandir(path) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()
            except OSError:
                continue
            (dirs if is_dir else files).append(e.name)
    return dirs, files


def _is_image(name: str, exts: tuple[str, ...]) -> bool:
    return name.lower().endswith(exts)


def scan_identity_folders(root: str | Path, depth: int | None = None,
                          extensions: Sequence[str] = IMAGE_EXTENSIONS) -> tuple[list[str], int]:
    """Sorted POSIX keys of every image under identity folders, and the depth used (1 or 2; 0 = a flat folder)."""
    root = require_dir(root, FOLDERS_LAYOUT)
    if depth not in (None, 0, 1, 2):
        raise ConfigError(f"dataset.depth={depth!r}: use 1 (<root>/<identity>/), 2 (<root>/<group>/<identity>/), "
                          "0 (a flat folder <root>/*.jpg, no identities) or null to detect it")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    top, top_files = _entries(str(root))  # top-level files (labels.csv, README) are not images of an identity ...
    flat = sorted(f for f in top_files if _is_image(f, exts))  # ... unless the folder is flat
    if depth == 0:
        return _flat(root, flat, exts)
    top.sort()
    level1: dict[str, tuple[list[str], list[str]]] = {}
    for name in progress_bar(top, desc=f"scan {root.name}", unit="dir", leave=False, disable=len(top) < 1000):
        level1[name] = _entries(os.path.join(root, name))
    detect = depth is None
    if detect:
        has_direct = any(_is_image(f, exts) for _, files in level1.values() for f in files)
        depth = 1 if has_direct else 2
    keys: list[str] = []
    if depth == 1:
        for ident, (_, files) in level1.items():
            keys.extend(f"{ident}/{f}" for f in files if _is_image(f, exts))
    else:
        jobs = [(group, sub) for group, (subs, _) in level1.items() for sub in subs]
        for group, ident in progress_bar(jobs, desc=f"scan {root.name}", unit="dir", leave=False,
                                         disable=len(jobs) < 1000):
            _, files = _entries(os.path.join(root, group, ident))
            keys.extend(f"{group}/{ident}/{f}" for f in files if _is_image(f, exts))
    if not keys and flat:
        if detect:
            return _flat(root, flat, exts)
        raise DataError(f"{root} holds no images at depth {depth} but {len(flat)} directly under it: for a flat "
                        "folder set depth: 0 (or null to detect it; its images get no identity), or list them with "
                        "format: filelist to give them identities")
    if not keys:
        raise DataError(f"{root} holds no images with extensions {', '.join(exts)} at depth {depth}; "
                        f"expected {FOLDERS_LAYOUT}")
    if flat:
        log.warning("%s: %d image(s) directly under the root (e.g. %s) belong to no identity folder and are left out",
                    root, len(flat), flat[0])
    keys.sort()
    return keys, depth


def _flat(root: Path, flat: list[str], exts: tuple[str, ...]) -> tuple[list[str], int]:
    if not flat:
        raise DataError(f"{root} holds no images with extensions {', '.join(exts)} directly under it (depth 0); "
                        f"expected {FOLDERS_LAYOUT}")
    log.info("%s: a flat folder of %d images (depth 0): no identities, so identity statistics skip it and the "
             "bootstrap resamples images", root, len(flat))
    return flat, 0


def read_identity_folders(root: str | Path, depth: int | None = None,
                          extensions: Sequence[str] = IMAGE_EXTENSIONS, geometry: str = "arcface_112",
                          name: str | None = None, labels: str | Path | None = None) -> FaceTable:
    """FaceTable of identity folders; identity = the folder path under root ("African/m.0abc" at depth 2), none for a
    flat folder (depth 0).

    ``labels`` optionally names a label CSV (``path, identity, <attributes>``) whose rows are joined by path, e.g. the
    demo targets' ground-truth ``labels.csv``.
    """
    root = Path(root).expanduser()
    keys, used = scan_identity_folders(root, depth, extensions)
    identities = [k.rsplit("/", 1)[0] for k in keys] if used > 0 else None
    table = FaceTable(name=name or root.name, source=FileSource(root), keys=keys, identities=identities,
                      geometry=geometry)
    if labels is not None:
        from facemac.data.labelcsv import attach_labels, read_label_csv

        table = attach_labels(table, read_label_csv(labels, root=root))
    return table
