"""Loose demo photos: the demo faces drawn anywhere on larger canvases, with their true landmarks written beside them.

The demo targets are stored as a face-recognition aligner crops them; researchers also bring unaligned photos
(CelebA-style loose crops, web photos with the face anywhere). This writes such a target in identity folders, with
``labels.csv`` (ground truth) and ``landmarks.csv`` (the drawn eyes, nose and mouth corners, VGGFace2's
``bb_landmark`` format), so ``geometry: detect`` can be scored against the same faces aligned with their true points.

    python -m facemac.data.demo.loose <out> [--layout celeba|assorted] [--identities 40] [--images 8]

Layouts: ``celeba`` = 178x218 crops with the eyes near CelebA's place; ``assorted`` = non-square canvases of
140-400 px per side, the face at 35-75 % of the shorter side, anywhere, rotated up to 15 degrees; ``square`` = the
same on 256x256 canvases (sizes an aligned crop could have: only the detector tells them apart).
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facemac.data.demo.generate import target_path
from facemac.data.demo.profiles import DEMO_ATTRIBUTES, PROFILES
from facemac.data.demo.render import render
from facemac.data.demo.sampling import draw_identity, draw_image, labels_of, stream
from facemac.data.maadface import LANDMARK_HEADER
from facemac.errors import ConfigError
from facemac.progress import progress_bar

LAYOUTS = ("celeba", "assorted", "square")
CELEBA_HW = (218, 178)
EYE_CENTRE_112 = (55.91, 51.6)  # midpoint of the template's eyes, in 112-pixel face coordinates


@dataclass(frozen=True)
class LooseTarget:
    """What ``write_loose_target`` wrote: the folder, its label and landmark files, how many images."""

    root: Path
    labels: Path
    landmarks: Path
    images: int


def placement(rng: np.random.Generator, layout: str) -> tuple[tuple[int, int], np.ndarray]:
    """((height, width), 2x3 similarity from the 112-pixel face image onto the canvas) for one loose photo."""
    if layout == "celeba":  # CelebA's aligned release: eyes ~40 px apart at about (89, 111), small tilt
        hw = CELEBA_HW
        scale, angle = rng.uniform(1.05, 1.25), rng.uniform(-4.0, 4.0)
        target = (89.0 + rng.uniform(-3, 3), 111.0 + rng.uniform(-3, 3))
        centre = EYE_CENTRE_112
    elif layout in ("assorted", "square"):  # web photos: any shape (or square), the face anywhere
        hw = (256, 256) if layout == "square" else (int(rng.integers(140, 401)), int(rng.integers(140, 401)))
        scale = rng.uniform(0.35, 0.75) * min(hw) / 112.0
        angle = rng.uniform(-15.0, 15.0)
        half = 56.0 * scale * math.sqrt(2.0)  # the rotated face box stays on the canvas
        target = (rng.uniform(half, max(half, hw[1] - half)), rng.uniform(half, max(half, hw[0] - half)))
        centre = (56.0, 56.0)
    else:
        raise ConfigError(f"loose demo layout={layout!r}; choose one of {', '.join(LAYOUTS)}")
    m = cv2.getRotationMatrix2D(centre, angle, scale)
    m[:, 2] += np.asarray(target) - np.asarray(centre)
    return hw, m


def write_loose_target(out: str | Path, profile: str = "demo_real_a", identities: int = 40, images: int = 8,
                       seed: int = 0, layout: str = "assorted", progress: bool = True) -> LooseTarget:
    """Render ``identities`` x ``images`` loose photos of a demo profile under ``out`` (identity folders)."""
    if profile not in PROFILES:
        raise ConfigError(f"loose demo profile={profile!r}; choose one of {', '.join(sorted(PROFILES))}")
    out = Path(out)
    prof = PROFILES[profile]
    rows, marks = [], []
    bar = progress_bar(total=identities * images, desc=f"loose {profile}", unit="img", disable=not progress)
    for i in range(identities):
        ident, habits = draw_identity(prof, seed, i)
        for j in range(images):
            shown, shot, rng = draw_image(prof, seed, i, j, ident, habits)
            hw, place = placement(stream(seed, f"{profile}/loose/{layout}", i, j), layout)
            img, lm = render(shown, shot, rng, place=place, canvas_hw=hw)
            rel = target_path(i, j)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]),
                                   [cv2.IMWRITE_JPEG_QUALITY, shot.jpeg_quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for {rel}")
            (out / rel).write_bytes(buf.tobytes())
            rows.append((rel, labels_of(shown, shot)))
            marks.append(lm)
            bar.update(1)
    bar.close()
    labels_path, landmarks_path = out / "labels.csv", out / "landmarks.csv"
    with open(labels_path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "identity", *DEMO_ATTRIBUTES])
        w.writerows([rel, rel.split("/")[0], *(int(v) for v in lab)] for rel, lab in rows)
    with open(landmarks_path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(LANDMARK_HEADER)
        w.writerows([rel.rsplit(".", 1)[0], *(f"{v:.2f}" for v in lm.reshape(-1))] for (rel, _), lm in zip(rows, marks))
    return LooseTarget(out, labels_path, landmarks_path, len(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facemac.data.demo.loose", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--layout", choices=LAYOUTS, default="assorted")
    ap.add_argument("--profile", default="demo_real_a", choices=sorted(PROFILES))
    ap.add_argument("--identities", type=int, default=40)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t = write_loose_target(a.out, a.profile, a.identities, a.images, a.seed, a.layout)
    print(f"{t.images} loose photos in {t.root} (labels: {t.labels.name}, true landmarks: {t.landmarks.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
