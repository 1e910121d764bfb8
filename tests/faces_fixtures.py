"""Annotation tables whose images exist (identity folders of aligned crops) with chosen probabilities, for the
examples/gallery/W&B-faces tests: the real crop reader (facemac.faces.load_crops) can redraw every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from facemac.annotation_table import (build_manifest, build_part, part_name, write_failures, write_manifest,
                                      write_part)
from facemac.data.registry import build_table

PREPROCESS = {"align": "arcface", "input_size": [3, 48, 48], "reduced_decode": False}


def write_face_folders(root: Path, identities: int, images: int, seed: int) -> list[str]:
    """``root/id<k>/<j>.png`` noise images, 112x112 (aligned crops), each one distinct; returns the reader's keys."""
    rng = np.random.default_rng(seed)
    for k in range(identities):
        (root / f"id{k}").mkdir(parents=True, exist_ok=True)
        for j in range(images):
            img = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
            Image.fromarray(img).save(root / f"id{k}" / f"{j}.png")
    return list(build_table(reader(root, root.name)).keys)


def reader(root: Path, name: str) -> dict:
    return {"name": name, "format": "folders", "root": str(root), "geometry": "arcface_112"}


def write_faces_table(directory: Path, root: Path, dataset: str, group: str, attributes: list[str],
                      probs: np.ndarray, thresholds: dict[str, float], parts: int = 2) -> Path:
    """An annotation dir over the images under ``root`` (rows = the reader's keys, in order), ``parts`` part files,
    written through the same contract calls the annotate stage makes."""
    keys = list(build_table(reader(root, dataset)).keys)
    assert len(keys) == len(probs)
    directory.mkdir(parents=True, exist_ok=True)
    files, rows = [], []
    for k, c in enumerate(np.array_split(np.arange(len(keys)), parts)):
        table = build_part([keys[i] for i in c], [keys[i].split("/")[0] for i in c], probs[c].astype(np.float32),
                           attributes)
        files.append(write_part(table, directory / part_name(k)))
        rows.append(len(c))
    write_failures(directory, [])
    write_manifest(directory, build_manifest(
        dataset=dataset, group=group, source_format="folders", root=str(root), checkpoint="fixture.pt",
        checkpoint_sha256="0" * 64, attributes=attributes, thresholds=thresholds, part_files=files, part_rows=rows,
        num_failures=0, complete=True, mc_samples=0,
        extra={"reader": reader(root, dataset), "preprocess": PREPROCESS, "geometry": "arcface_112"}))
    return directory
