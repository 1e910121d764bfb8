"""A read-only gallery page per annotated dataset: ``gallery/<dataset>.html`` + its face images; browse any
attribute, faces sorted by the MAC's probability with the threshold marked. Plain files that work offline from the
folder (no server; the same conventions as the audit labelling page): the data sits in the page as JSON, the script and
style are package data copied to ``gallery/assets/``."""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from facemac.atomic import write_text_atomic
from facemac.faces.picks import AttributePicks

ASSETS = ("gallery.js", "gallery.css")
DATA_ID = "gallery-data"


@dataclass
class GalleryDataset:
    """What one page shows: the dataset, and per attribute its picked faces, threshold and rate."""

    name: str
    group: str
    attributes: list[str]
    picks: dict[str, AttributePicks]
    rates: dict[str, float | None] = field(default_factory=dict)
    label_rule: str = ""  # which threshold set labels the faces (counting_thresholds | thresholds)


def safe_name(name: str) -> str:
    """A dataset name as a file name (the page and its image folder)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "dataset"


def copy_assets(gallery_dir: Path) -> Path:
    """The page's script and style, from the package, into ``gallery/assets/``."""
    target = gallery_dir / "assets"
    target.mkdir(parents=True, exist_ok=True)
    src = resources.files("facemac.faces") / "assets"
    for name in ASSETS:
        with resources.as_file(src / name) as f:
            shutil.copyfile(f, target / name)
    return target


def _save_jpeg(path: Path, crop: np.ndarray) -> None:
    """Plain writes (no fsync per face: a thousand of them cost seconds); the page, written last and atomically, is
    what makes a gallery exist."""
    Image.fromarray(np.ascontiguousarray(crop[..., :3]), "RGB").save(path, format="JPEG", quality=90)


def page_data(g: GalleryDataset, images: dict[str, str], per_attribute: int) -> dict:
    """The JSON the page renders: per attribute, its readable faces sorted by probability (highest first)."""
    attrs = []
    for a in g.attributes:
        ap = g.picks[a]
        kinds: dict[str, list[str]] = {}
        for kind, picks in ap.kinds.items():
            for p in picks[:per_attribute]:
                kinds.setdefault(p.path, []).append(kind)
        faces = [{"img": images[p.path], "path": p.path, "identity": p.identity, "p": round(p.probability, 5),
                  "kinds": kinds[p.path]}
                 for p in ap.sorted_by_probability() if p.path in kinds and p.path in images]
        rate = g.rates.get(a)
        attrs.append({"name": a, "threshold": round(ap.threshold, 5), "faces": faces,
                      "rate": None if rate is None or not np.isfinite(rate) else round(float(rate), 5)})
    return {"dataset": g.name, "group": g.group, "label_rule": g.label_rule, "per_attribute": per_attribute,
            "attributes": attrs}


def write_gallery(gallery_dir: Path, g: GalleryDataset, crops: dict[str, np.ndarray | None],
                  per_attribute: int) -> Path:
    """Write ``<gallery_dir>/<dataset>.html``, its images (``<dataset>/<n>.jpg``, each face once) and the assets."""
    copy_assets(gallery_dir)
    stem = safe_name(g.name)
    img_dir = gallery_dir / stem
    img_dir.mkdir(parents=True, exist_ok=True)
    used = {p.path for a in g.attributes for picks in g.picks[a].kinds.values() for p in picks[:per_attribute]}
    images: dict[str, str] = {}
    for k, path in enumerate(sorted(p for p in used if crops.get(p) is not None)):
        _save_jpeg(img_dir / f"{k}.jpg", crops[path])
        images[path] = f"{stem}/{k}.jpg"
    data = json.dumps(page_data(g, images, per_attribute), separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(f"{g.name} — faces by attribute")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="assets/gallery.css">
</head><body>
<header>
  <h1>{html.escape(g.name)} <small>({html.escape(g.group)})</small></h1>
  <label>attribute <select id="attribute"></select></label>
  <span id="summary"></span>
  <span class="keys">keys: ← → attribute · + − face size · click a face to enlarge · Esc close · ? help</span>
</header>
<main id="faces" aria-live="polite"></main>
<div id="zoom" hidden><figure><img alt=""><figcaption></figcaption></figure></div>
<footer>Faces as the MAC saw them (after its alignment), sorted by its probability; the line marks the threshold
(label: probability &gt; threshold). Shown per attribute: up to {per_attribute} most confident positives, least
confident positives, faces near the threshold and most confident negatives. A read-only page written by facemac's
analysis; nothing here is a judgement by a person.</footer>
<script type="application/json" id="{DATA_ID}">{data}</script>
<script src="assets/gallery.js"></script>
</body></html>
"""
    return write_text_atomic(gallery_dir / f"{stem}.html", page)
