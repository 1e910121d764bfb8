"""python -m facemac.data.demo.contact_sheet OUT.png: one row per attribute, sampled demo faces with it and without it.

It is how a person checks that every label is visible in the pixels (docs/demo_contact_sheet.png is made by it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facemac.data.demo.profiles import DEMO_ATTRIBUTES, PROFILES
from facemac.data.demo.render import SIZE, render
from facemac.data.demo.sampling import labels_of, sample_identity, sample_shot, stream

LABEL_W = 190
HEAD_H = 26


def sample_pool(profile: str, seed: int, identities: int, images: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Render identities x images faces of a profile (like the datasets do) with their label vectors."""
    prof = PROFILES[profile]
    imgs, labels = [], []
    for i in range(identities):
        ident = sample_identity(prof, stream(seed, profile, i))
        for j in range(images):
            rng = stream(seed, profile, i, j)
            shot = sample_shot(prof, ident, rng)
            img, _ = render(ident, shot, rng)
            imgs.append(img)
            labels.append(labels_of(ident, shot))
    return imgs, np.stack(labels)


def pick(labels: np.ndarray, col: int, value: int, k: int, rng: np.random.Generator) -> list[int]:
    """Up to k distinct random images whose label `col` equals value."""
    idx = np.flatnonzero(labels[:, col] == value)
    return [int(i) for i in rng.choice(idx, size=min(k, len(idx)), replace=False)]


def contact_sheet(seed: int = 0, per_side: int = 4, tile: int = SIZE, profile: str = "celeba_demo",
                  identities: int = 160) -> np.ndarray:
    """RGB sheet: a row per attribute, `per_side` faces with it (left, green) and without it (right, red)."""
    imgs, labels = sample_pool(profile, seed, identities=identities, images=2)
    rng = np.random.default_rng(seed)
    gap = 12
    width = LABEL_W + 2 * per_side * tile + gap
    sheet = np.full((HEAD_H + len(DEMO_ATTRIBUTES) * (tile + 4), width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    x_with, x_without = LABEL_W, LABEL_W + per_side * tile + gap
    cv2.putText(sheet, "with the attribute (label 1)", (x_with + 6, 18), font, 0.55, (0, 120, 0), 1, cv2.LINE_AA)
    cv2.putText(sheet, "without it (label 0)", (x_without + 6, 18), font, 0.55, (170, 0, 0), 1, cv2.LINE_AA)
    for r, attr in enumerate(DEMO_ATTRIBUTES):
        y = HEAD_H + r * (tile + 4)
        cv2.putText(sheet, attr, (6, y + tile // 2 + 6), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        for side, (x0, value) in enumerate(((x_with, 1), (x_without, 0))):
            for k, i in enumerate(pick(labels, r, value, per_side, rng)):
                face = imgs[i] if tile == SIZE else cv2.resize(imgs[i], (tile, tile), interpolation=cv2.INTER_AREA)
                sheet[y:y + tile, x0 + k * tile:x0 + (k + 1) * tile] = face
            colour = (0, 150, 0) if value else (190, 0, 0)
            cv2.rectangle(sheet, (x0, y), (x0 + per_side * tile - 1, y + tile - 1), colour, 2)
    return sheet


def main(argv: list[str] | None = None) -> None:
    """Write the sheet as a PNG (palette-quantised to stay small)."""
    from PIL import Image

    parser = argparse.ArgumentParser(prog="python -m facemac.data.demo.contact_sheet", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-side", type=int, default=4)
    parser.add_argument("--tile", type=int, default=SIZE, help="pixels per face (64 shows what a 64-px model sees)")
    parser.add_argument("--profile", default="celeba_demo", choices=sorted(PROFILES))
    args = parser.parse_args(argv)
    sheet = contact_sheet(args.seed, args.per_side, args.tile, args.profile)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
