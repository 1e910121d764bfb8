"""Tiny image trees for the reader tests: a few 16x16 JPEGs whose pixels encode their index."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def tiny_jpeg(value: int = 0, size: tuple[int, int] = (16, 16)) -> bytes:
    """A small JPEG with a flat colour derived from ``value``, so images are distinguishable after decoding."""
    img = np.full((size[1], size[0], 3), (value * 37) % 256, dtype=np.uint8)
    img[..., 1] = (value * 11) % 256
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def write_image(path: Path, value: int = 0, size: tuple[int, int] = (16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiny_jpeg(value, size))
    return path


CELEBA_TEST_ATTRS = ["5_o_Clock_Shadow", "Eyeglasses", "Male", "Smiling", "Young"]


def write_celeba_tree(base: Path, n: int = 9, attrs: list[str] | None = None, seed: int = 0,
                      landmarks: bool = True, bbox: bool = True) -> dict:
    """A CelebA-layout folder at ``base`` (irregular spacing like the real files); returns the truth it encodes."""
    attrs = attrs or CELEBA_TEST_ATTRS
    rng = np.random.default_rng(seed)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    values = rng.choice([-1, 1], size=(n, len(attrs)))
    splits = np.array([i % 3 for i in range(n)])
    splits[:2] = 0
    ids = rng.integers(1, 5, size=n)
    lms = rng.integers(20, 90, size=(n, 10))
    for i, f in enumerate(files):
        write_image(base / "img_align_celeba" / f, i, size=(16, 20))
    cells = lambda v: "".join(f"  {x}" if x > 0 else f" {x}" for x in v)  # noqa: E731  (CelebA pads +1 with 2 spaces)
    (base / "list_attr_celeba.txt").write_text(
        f"{n}\n" + " ".join(attrs) + " \n" + "".join(f"{f}{cells(v)}\n" for f, v in zip(files, values)))
    (base / "list_eval_partition.txt").write_text("".join(f"{f} {s}\n" for f, s in zip(files, splits)))
    (base / "identity_CelebA.txt").write_text("".join(f"{f} {d}\n" for f, d in zip(files, ids)))
    if landmarks:
        head = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")
        (base / "list_landmarks_align_celeba.txt").write_text(
            f"{n}\n{head}\n" + "".join(f"{f}" + "".join(f"{x:>5d}" for x in v) + "\n" for f, v in zip(files, lms)))
    if bbox:
        (base / "list_bbox_celeba.txt").write_text(
            f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{f}  1  2  10  12\n" for f in files))
    return {"files": files, "attrs": attrs, "values": values, "splits": splits, "ids": ids,
            "landmarks": lms.reshape(n, 5, 2)}
