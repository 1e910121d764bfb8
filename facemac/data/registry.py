"""One entry point from a `dataset:` config to a FaceTable, so stages never branch on the on-disk format.

Config errors (unknown format, unset or missing root) are ConfigErrors that name the key to set and the layout
expected there; problems inside an existing dataset (missing label file, malformed rows) are the readers' DataErrors,
which name the file and line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from facemac.data.table import FaceTable
from facemac.config import to_plain
from facemac.errors import ConfigError

LAYOUTS: dict[str, str] = {
    "celeba": "the CelebA folder holding img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt, "
              "identity_CelebA.txt (and optionally list_landmarks_align_celeba.txt), or its parent holding celeba/",
    "maadface": "a folder holding MAAD_Face.csv (Filename, Identity, 47 attributes coded 1/-1/0), the VGGFace2 "
                "images folder (<images_dir>/n000002/0001_01.jpg) and VGGFace2's bb_landmark/ folder "
                "(loose_landmark_train.csv, loose_landmark_test.csv)",
    "folders": "identity folders: <root>/<identity>/*.jpg, <root>/<group>/<identity>/*.jpg, or a flat <root>/*.jpg",
    "filelist": "a text list of 'relative/path.jpg [identity]' lines, or a CSV with a 'path' (and 'identity') "
                "column; set dataset.file to the list, dataset.root to the images folder (default: the list's folder)",
    "recordio": "a folder holding insightface's train.rec and train.idx (or the path of the .rec file)",
    "labels_csv": "a CSV 'path, identity, <attributes as 0/1>' (dataset.file, or dataset.root pointing at the CSV); "
                  "images relative to the CSV's folder unless dataset.root is a folder",
}
FORMATS: tuple[str, ...] = tuple(LAYOUTS)
_UNSET = (None, "???", "")


def _path_value(cfg: dict[str, Any], name: str) -> Path | None:
    value = cfg.get(name)
    return None if value in _UNSET else Path(str(value)).expanduser()


def _require_root(cfg: dict[str, Any], fmt: str, prefix: str, must_be_dir: bool = False) -> Path:
    """dataset.root, set and existing; otherwise a ConfigError naming the key and the layout expected there."""
    root = _path_value(cfg, "root")
    if root is None:
        hint = " (or use dataset=demo to run on generated demo faces)" if fmt == "celeba" else ""
        if prefix == "dataset" and cfg.get("name"):  # the one rule for data roots (conf/local/README.md)
            hint = f", or name it once for this machine as roots.{cfg['name']}: <path> in conf/local/default.yaml{hint}"
        raise ConfigError(f"{prefix}.root is not set; set {prefix}.root=<path> to {LAYOUTS[fmt]}{hint}")
    if not root.exists():
        raise ConfigError(f"{prefix}.root={root} does not exist; expected {LAYOUTS[fmt]}")
    if must_be_dir and not root.is_dir():
        raise ConfigError(f"{prefix}.root={root} is not a folder; expected {LAYOUTS[fmt]}")
    return root


def _file_and_root(cfg: dict[str, Any], fmt: str, prefix: str) -> tuple[Path, Path | None]:
    """(list/CSV file, images root or None) for the two formats a single file describes."""
    file = _path_value(cfg, "file")
    if file is None and _path_value(cfg, "root") is None:
        raise ConfigError(f"{prefix}.file is not set; set {prefix}.file=<path> to {LAYOUTS[fmt]}")
    if file is None:
        root = _require_root(cfg, fmt, prefix)
        if root.is_dir():
            raise ConfigError(f"{prefix}.file is not set and {prefix}.root={root} is a folder; expected {LAYOUTS[fmt]}")
        return root, None
    if not file.exists():
        raise ConfigError(f"{prefix}.file={file} does not exist; expected {LAYOUTS[fmt]}")
    root = _path_value(cfg, "root")
    if root is not None and not root.is_dir():
        raise ConfigError(f"{prefix}.root={root} is not an existing folder (the images root for {prefix}.file)")
    return file, root


def _geometry(cfg: dict[str, Any], default: str) -> str:
    return str(cfg.get("geometry") or default)


def _landmark_files(cfg: dict[str, Any], prefix: str, base: Path) -> list[Path]:
    """``landmarks:`` (a file or a list of files in VGGFace2's bb_landmark format; relative to ``base``) → paths."""
    value = cfg.get("landmarks")
    items = [value] if isinstance(value, (str, Path)) else list(value)
    out = []
    for item in items:
        p = Path(str(item)).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            from facemac.data.maadface import LANDMARK_LAYOUT

            raise ConfigError(f"{prefix}.landmarks={item}: {p} is not a file; expected {LANDMARK_LAYOUT}")
        out.append(p)
    return out


def with_landmark_file(table: FaceTable, cfg: dict[str, Any], prefix: str, base: Path) -> FaceTable:
    """Join a user's own 5-point landmarks (``landmarks: <csv>``, e.g. from insightface or RetinaFace, in VGGFace2's
    ``bb_landmark`` format: NAME_ID = the image's key without extension) onto a folder, file-list or label-CSV
    table. Its geometry becomes ``loose`` (whatever the folder default said): the points, not the crop, drive the
    ArcFace warp, and the pixel check compares them with the detector's."""
    if cfg.get("landmarks") in _UNSET or cfg.get("landmarks") is False:
        return table
    if cfg.get("geometry") == "detect":
        raise ConfigError(f"{prefix}: both geometry: detect and landmarks: are set; keep one (the landmarks file "
                          "aligns the faces without a detector)")
    from facemac.data.maadface import attach_landmarks, read_vggface2_landmarks

    paths = _landmark_files(cfg, prefix, base)
    names, points = read_vggface2_landmarks(paths)
    max_missing = float(cfg.get("max_missing_landmarks", 0.01))
    if not 0.0 <= max_missing <= 1.0:
        raise ConfigError(f"{prefix}.max_missing_landmarks={max_missing!r} must be a share in [0, 1]")
    table = attach_landmarks(table, names, points, max_missing, " + ".join(str(p) for p in paths),
                             what=f"{prefix} images", key=prefix, fix="or use geometry: detect")
    return dataclasses.replace(table, geometry="loose")


def _celeba(cfg: dict[str, Any], prefix: str, name: str) -> FaceTable:
    root = _require_root(cfg, "celeba", prefix, must_be_dir=True)
    from facemac.data.celeba import read_celeba

    return read_celeba(root, attributes=cfg.get("attributes"), geometry=_geometry(cfg, "loose"), name=name)


def _maadface(cfg: dict[str, Any], prefix: str, name: str) -> FaceTable:
    root = _require_root(cfg, "maadface", prefix, must_be_dir=True)
    from facemac.data.maadface import read_maadface

    keys = ("csv", "images_dir", "val_fraction", "test_fraction", "seed", "max_missing_landmarks")
    kwargs = {k: cfg[k] for k in keys if cfg.get(k) is not None}
    # VGGFace2's landmarks feed the ArcFace warp; align=resize (an explicit opt-in) does without them
    landmarks = cfg.get("landmarks", "auto") if cfg.get("align", "arcface") == "arcface" else None
    return read_maadface(root, attributes=cfg.get("attributes"), geometry=_geometry(cfg, "loose"), name=name,
                         landmarks=landmarks, **kwargs)


def _folders(cfg: dict[str, Any], prefix: str, name: str) -> FaceTable:
    root = _require_root(cfg, "folders", prefix, must_be_dir=True)
    from facemac.data.folders import read_identity_folders

    kwargs: dict[str, Any] = {}
    if cfg.get("extensions"):
        kwargs["extensions"] = tuple(cfg["extensions"])
    labels = _path_value(cfg, "labels")
    if labels is not None and not labels.is_absolute() and (root / labels).exists():
        labels = root / labels  # a bare name such as labels.csv means the file beside the identity folders
    table = read_identity_folders(root, depth=cfg.get("depth"), geometry=_geometry(cfg, "arcface_112"), name=name,
                                  labels=labels, **kwargs)
    return with_landmark_file(table, cfg, prefix, root)


def _filelist(cfg: dict[str, Any], prefix: str, name: str) -> FaceTable:
    file, root = _file_and_root(cfg, "filelist", prefix)
    from facemac.data.filelist import read_file_list

    table = read_file_list(file, root=root, geometry=_geometry(cfg, "arcface_112"), name=name)
    return with_landmark_file(table, cfg, prefix, root if root is not None else file.parent)


def _recordio(cfg: dict[str, Any], prefix: str, name: str) -> FaceTable:
    root = _require_root(cfg, "recordio", prefix)
    from facemac.data.recordio import read_recordio

    return read_recordio(root, geometry=_geometry(cfg, "arcface_112"), name=name)


def _labels_csv(cfg: dict[str, Any], prefix: str, name: str) -> FaceTable:
    file, root = _file_and_root(cfg, "labels_csv", prefix)
    from facemac.data.labelcsv import read_label_csv

    table = read_label_csv(file, root=root, geometry=_geometry(cfg, "unknown"), name=name,
                           attributes=cfg.get("attributes"))
    return with_landmark_file(table, cfg, prefix, root if root is not None else file.parent)


READERS: dict[str, Callable[[dict[str, Any], str, str], FaceTable]] = {
    "celeba": _celeba, "maadface": _maadface, "folders": _folders, "filelist": _filelist,
    "recordio": _recordio, "labels_csv": _labels_csv,
}


def _demo(cfg: dict[str, Any], cache_dir: str | Path | None, demo_params: Mapping | None, prefix: str,
          name: str) -> FaceTable:
    """Generate (or reuse) the procedural demo faces and read their training set (CelebA layout)."""
    from facemac.data.demo import ensure_demo

    if cfg.get("format") != "celeba":
        raise ConfigError(f"{prefix}.demo=true generates the demo training set, which is in CelebA layout: set "
                          f"{prefix}.format=celeba, or give {prefix}.root (demo targets come from targets=demo)")
    if cache_dir is None:
        cache_dir = os.environ.get("FACEMAC_CACHE", "~/.cache/facemac")
    params = dict(to_plain(demo_params) if demo_params is not None else {})
    params.update(to_plain(cfg.get("demo_params") or {}))
    demo = ensure_demo(Path(str(cache_dir)).expanduser(), **params)
    return _celeba(dict(cfg, root=str(demo.celeba_root)), prefix, name)


def build_table(dataset_cfg: Mapping | Any, cache_dir: str | Path | None = None, prefix: str = "dataset",
                demo_params: Mapping | None = None) -> FaceTable:
    """The FaceTable a `dataset:` config describes (format in FORMATS); ``prefix`` is the key named in errors."""
    cfg = to_plain(dataset_cfg)
    fmt = cfg.get("format")
    if fmt in _UNSET:
        raise ConfigError(f"{prefix}.format is not set; choose one of {', '.join(FORMATS)}")
    if fmt not in READERS:
        raise ConfigError(f"{prefix}.format={fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    name = str(cfg.get("name") or fmt)
    if cfg.get("demo") and _path_value(cfg, "root") is None:
        return _demo(cfg, cache_dir, demo_params, prefix, name)
    return READERS[fmt](cfg, prefix, name)
