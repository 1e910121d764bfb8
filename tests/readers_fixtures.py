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
