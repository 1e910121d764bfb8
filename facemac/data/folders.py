"""Identity folders (`root/<identity>/*.jpg`, or `root/<group>/<identity>/*.jpg` like BUPT's race folders).

This is how most face-recognition training sets ship (CASIA-WebFace, BUPT, DCFace, IDiff-Face, ...). The scan uses
``os.scandir`` only (the directory entry's type, no per-file stat), so a million files index in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from facemac.data.layout import IMAGE_EXTENSIONS, require_dir
from facemac.data.sources import FileSource
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError
from facemac.progress import progress_bar

FOLDERS_LAYOUT = ("identity folders: <root>/<identity>/*.jpg (or .png, ...), or one level deeper "
                  "<root>/<group>/<identity>/*.jpg")


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
    """Sorted POSIX keys of every image under identity folders, and the depth used (1 or 2)."""
    root = require_dir(root, FOLDERS_LAYOUT)
    if depth not in (None, 1, 2):
        raise ConfigError(f"dataset.depth={depth!r}: use 1 (<root>/<identity>/), 2 (<root>/<group>/<identity>/) "
                          "or null to detect it")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    top, _ = _entries(str(root))  # files at the top level (labels.csv, README) are not images of an identity
    top.sort()
    level1: dict[str, tuple[list[str], list[str]]] = {}
    for name in progress_bar(top, desc=f"scan {root.name}", unit="dir", leave=False, disable=len(top) < 1000):
        level1[name] = _entries(os.path.join(root, name))
    if depth is None:
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
    if not keys:
        raise DataError(f"{root} holds no images with extensions {', '.join(exts)} at depth {depth}; "
                        f"expected {FOLDERS_LAYOUT}")
    keys.sort()
    return keys, depth


def read_identity_folders(root: str | Path, depth: int | None = None,
                          extensions: Sequence[str] = IMAGE_EXTENSIONS, geometry: str = "arcface_112",
                          name: str | None = None, labels: str | Path | None = None) -> FaceTable:
    """FaceTable of identity folders; identity = the folder path under root ("African/m.0abc" at depth 2).

    ``labels`` optionally names a label CSV (``path, identity, <attributes>``) whose rows are joined by path, e.g. the
    demo targets' ground-truth ``labels.csv``.
    """
    root = Path(root).expanduser()
    keys, _ = scan_identity_folders(root, depth, extensions)
    identities = [k.rsplit("/", 1)[0] for k in keys]
    table = FaceTable(name=name or root.name, source=FileSource(root), keys=keys, identities=identities,
                      geometry=geometry)
    if labels is not None:
        from facemac.data.labelcsv import attach_labels, read_label_csv

        table = attach_labels(table, read_label_csv(labels, root=root))
    return table
