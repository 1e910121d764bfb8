"""Tiny learnable face-like data for training tests: in-memory tables and CelebA / MAAD-Face layout trees on disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facemac.data.table import FaceTable

ATTRS = ["Bright", "Red", "Left_Bar"]


class MemorySource:
    """Encoded images held in a dict (picklable, so DataLoader workers can use it)."""

    def __init__(self, blobs: dict[str, bytes]):
        self.blobs = blobs

    def read(self, key: str) -> bytes:
        return self.blobs[key]

    def describe(self) -> str:
        return f"{len(self.blobs)} in-memory images"


def draw(labels: np.ndarray, rng: np.random.Generator, h: int = 32, w: int = 32) -> np.ndarray:
    """An RGB image whose three attributes are plain to see: brightness, red tint, a bar on the left."""
    base = 170 if labels[0] else 60
    img = np.full((h, w, 3), base, np.int16) + rng.integers(-20, 21, (h, w, 3))
    if labels[1]:
        img[..., 0] += 60
    if labels[2]:
        img[:, : w // 4] = 255 - img[:, : w // 4]
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(img: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def make_table(n: int = 96, seed: int = 0, masked_fraction: float = 0.0, broken: int = 0,
               fractions: tuple[float, float] = (0.6, 0.2)) -> FaceTable:
    """n rows, 3 attributes, splits train/val/test by ``fractions``; some masked cells and unreadable images."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, (n, len(ATTRS))).astype(np.float32)
    blobs = {f"img_{i:04d}.png": encode(draw(labels[i], rng)) for i in range(n)}
    keys = list(blobs)
    for k in keys[:broken]:
        blobs[k] = b"not an image"
    mask = rng.random((n, len(ATTRS))) >= masked_fraction
    n_tr, n_va = int(fractions[0] * n), int(fractions[1] * n)
    splits = np.array([0] * n_tr + [1] * n_va + [2] * (n - n_tr - n_va), dtype=np.int8)
    return FaceTable(name="tiny", source=MemorySource(blobs), keys=keys, attributes=list(ATTRS),
                     identities=[str(i) for i in range(n)], labels=labels, mask=mask, splits=splits,
                     geometry="arcface_112")


# --- on-disk layouts (for runs that go through the dataset registry, e.g. subprocesses) ---------------------------

def write_celeba_tree(root: Path, n: int = 48, seed: int = 0) -> Path:
    """A CelebA-layout tree (178x218 jpgs, 40 attributes of which 3 are drawn, partitions, identities, landmarks)."""
    from facemac.attributes import CELEBA_ATTRIBUTES

    rng = np.random.default_rng(seed)
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True, exist_ok=True)
    attr_lines, part_lines, id_lines, lm_lines = [], [], [], []
    lm = "69 111 108 111 88 135 71 153 105 153"  # eyes, nose, mouth corners of CelebA's mean aligned face
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        lab = rng.integers(0, 2, len(CELEBA_ATTRIBUTES))
        img = draw(lab[:3], rng, 218, 178)
        (img_dir / name).write_bytes(encode(img, ".jpg"))
        attr_lines.append(name + " " + " ".join("1" if v else "-1" for v in lab))
        part_lines.append(f"{name} {0 if i < n * 0.6 else 1 if i < n * 0.8 else 2}")
        id_lines.append(f"{name} {i % 7 + 1}")
        lm_lines.append(f"{name} {lm}")
    (root / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(attr_lines)
                                               + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(part_lines) + "\n")
    (root / "identity_CelebA.txt").write_text("\n".join(id_lines) + "\n")
    (root / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x "
        "rightmouth_y\n" + "\n".join(lm_lines) + "\n")
    return root


def landmark_csv(names: list[str], rng: np.random.Generator, h: int = 96, w: int = 80) -> str:
    """VGGFace2's loose_landmark_*.csv for ``names`` (no extension, quoted): 5 plausible points in an h x w image."""
    base = np.array([[0.35, 0.42], [0.65, 0.42], [0.5, 0.56], [0.38, 0.72], [0.62, 0.72]]) * (w, h)
    lines = ["NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y"]
    for n in names:
        pts = base + rng.normal(0, 1.0, base.shape)
        lines.append(f'"{n}",' + ",".join(f"{v:.2f}" for v in pts.reshape(-1)))
    return "\n".join(lines) + "\n"


def write_maadface_tree(root: Path, n_ids: int = 12, per_id: int = 4, seed: int = 0, landmarks: bool = True) -> Path:
    """A MAAD-Face-layout tree: MAAD_Face.csv (1/-1/0 with undefined 0 cells), images/<id>/<nn>_01.jpg and VGGFace2's
    bb_landmark/loose_landmark_{train,test}.csv (the last identity in the test file)."""
    from facemac.attributes import MAADFACE_ATTRIBUTES

    rng = np.random.default_rng(seed)
    rows = ["Filename,Identity," + ",".join(MAADFACE_ATTRIBUTES)]
    for p in range(n_ids):
        ident = f"n{p + 2:06d}"
        (root / "images" / ident).mkdir(parents=True, exist_ok=True)
        for j in range(per_id):
            fname = f"{ident}/{j + 1:04d}_01.jpg"
            codes = rng.choice([1, -1, 0], size=len(MAADFACE_ATTRIBUTES), p=[0.45, 0.45, 0.1])
            img = draw(codes[:3] == 1, rng, 96, 80)
            (root / "images" / fname).write_bytes(encode(img, ".jpg"))
            rows.append(f"{fname},{p + 2}," + ",".join(str(int(c)) for c in codes))
    (root / "MAAD_Face.csv").write_text("\n".join(rows) + "\n")
    if landmarks:
        names = [r.split(",")[0].rsplit(".", 1)[0] for r in rows[1:]]
        (root / "bb_landmark").mkdir(exist_ok=True)
        (root / "bb_landmark" / "loose_landmark_train.csv").write_text(landmark_csv(names[:-per_id], rng))
        (root / "bb_landmark" / "loose_landmark_test.csv").write_text(landmark_csv(names[-per_id:], rng))
    return root
