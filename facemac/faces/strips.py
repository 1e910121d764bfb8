"""Example strips: a picture per attribute holding, per dataset, rows of faces (most confident positives, least
confident positives, near the threshold), each captioned with the MAC's probability; drawn with Pillow (fast)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facemac.atomic import atomic_write

PAD, LABEL_W, TITLE_H, CAPTION_H = 6, 190, 22, 16
BACKGROUND, INK, MUTED, MISSING = (255, 255, 255), (20, 20, 20), (110, 110, 110), (225, 225, 225)
POSITIVE, NEGATIVE = (20, 120, 40), (170, 40, 30)


@dataclass
class StripRow:
    """One row of a strip: a label and faces with their probabilities."""

    label: str
    faces: list[np.ndarray]  # uint8 RGB crops, any size (resized to the strip's)
    probabilities: list[float]
    threshold: float  # captions of positives (probability > threshold) are green, of negatives red
    empty: str = "none"  # said in place of the faces when there are none


@dataclass
class DatasetStrip:
    """The rows of one dataset, under a title (dataset, group, rate) or a note saying why there are no faces."""

    title: str
    rows: list[StripRow] = field(default_factory=list)
    note: str = ""


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        return ImageFont.load_default()


def block_heights(blocks: list[DatasetStrip], size: int) -> list[int]:
    """Pixel height of each dataset's block (its title, then a row per kind, or one note line)."""
    cell_h = size + CAPTION_H + PAD
    return [TITLE_H + (len(b.rows) * cell_h if b.rows else CAPTION_H + PAD) for b in blocks]


def tile_origin(blocks: list[DatasetStrip], size: int, block: int, row: int, col: int) -> tuple[int, int]:
    """(x, y) of a face's top-left corner in the picture draw_strips writes (tests read faces back with it)."""
    y = TITLE_H * 2 + sum(block_heights(blocks, size)[:block]) + TITLE_H + row * (size + CAPTION_H + PAD)
    return LABEL_W + col * (size + PAD), y


def draw_strips(path: Path, title: str, threshold_note: str, blocks: list[DatasetStrip], per_row: int,
                size: int) -> Path:
    """Write one PNG (atomically) with a title line and one block per dataset; returns its path."""
    cell_w, cell_h = size + PAD, size + CAPTION_H + PAD
    width = LABEL_W + per_row * cell_w + PAD
    heights = block_heights(blocks, size)
    height = TITLE_H * 2 + sum(heights) + PAD
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    big, small = _font(15), _font(11)
    draw.text((PAD, PAD), title, fill=INK, font=big)
    draw.text((PAD, PAD + TITLE_H - 4), threshold_note, fill=MUTED, font=small)
    y = TITLE_H * 2
    for block, h in zip(blocks, heights):
        draw.line([(PAD, y + 2), (width - PAD, y + 2)], fill=MISSING)
        draw.text((PAD, y + 5), block.title, fill=INK, font=big)
        yy = y + TITLE_H
        if not block.rows:
            draw.text((LABEL_W, yy), block.note or "no faces", fill=MUTED, font=small)
        for row in block.rows:
            draw.text((PAD, yy + size // 2 - 6), row.label, fill=MUTED, font=small)
            if not row.faces:
                draw.text((LABEL_W, yy + size // 2 - 6), row.empty, fill=MUTED, font=small)
            for k, (face, p) in enumerate(zip(row.faces[:per_row], row.probabilities[:per_row])):
                x = LABEL_W + k * cell_w
                tile = Image.fromarray(np.ascontiguousarray(face[..., :3]), "RGB")
                if tile.size != (size, size):
                    tile = tile.resize((size, size), Image.BILINEAR)
                img.paste(tile, (x, yy))
                caption = f"p = {p:.3f}"
                draw.text((x + 2, yy + size + 1), caption, fill=POSITIVE if p > row.threshold else NEGATIVE,
                          font=small)
            yy += cell_h
        y += h
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        img.save(fh, format="PNG", compress_level=1)  # lossless; level 1: fast, ~10 % larger
    return path
