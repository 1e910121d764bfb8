"""Bad (and awkward-but-fine) image files for reliability tests of every stage that reads images.

API (stable; the train/annotate stage tests reuse it):

    write_bad_images(folder, subdir="bad_person") -> dict[relpath, expected]

writes one file per kind under ``folder/subdir/`` and returns, for each path relative to ``folder`` (forward
slashes), either ``"ok"`` (facemac must decode it to an HxWx3 uint8 RGB image of ``SIZE``) or
``"skip:<reason substring>"`` (facemac must refuse it with an ImageDecodeError whose ``reason`` contains the
substring, and a FaceDataset must report it in ``failures`` instead of crashing).

    expected_rgb(relpath) -> ((r, g, b), tolerance)

is the flat colour an "ok" file decodes to (every pixel within ``tolerance`` per channel), so tests can check the
pixel values, not just the shape. ``ok_paths(expected)`` / ``skip_paths(expected)`` split the dict.

Every file is a few hundred bytes (the decompression bombs too: they are real files whose headers lie), so writing
them takes milliseconds and decoding them never allocates more than a few KiB.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SIZE = (20, 24)  # (height, width) of every decodable file: not square, so a transposed result is caught
BOMB_SIDE = 60000  # what the bombs' headers claim: 3.6 gigapixels, ~10.8 GB as RGB

_RGB = (200, 120, 30)
_GOOD: dict[str, tuple[tuple[int, int, int], int]] = {
    "good.jpg": (_RGB, 6),
    "progressive.jpg": (_RGB, 6),
    "gray.jpg": ((90, 90, 90), 3),
    "gray.png": ((90, 90, 90), 0),
    "rgba.png": ((10, 200, 60), 0),  # alpha is dropped (not composited): the stored colour comes back
    "gray_alpha.png": ((70, 70, 70), 0),
    "palette.png": ((40, 160, 220), 0),
    "rgb16.png": ((195, 3, 255), 0),  # 16-bit (50000, 1000, 65535) >> 8
    "cmyk.jpg": ((255, 0, 0), 60),  # CMYK (0, 255, 255, 0) is pure red; the CMYK→RGB path is approximate
    "trailing_bytes.jpg": (_RGB, 6),  # junk after the end-of-image marker (some cameras do this): still fine
    "jpeg_named.png": (_RGB, 6),  # JPEG bytes behind a .png name: the content decides, not the extension
}

_SKIP: dict[str, str] = {
    "empty.jpg": "empty",
    "text.jpg": "not a decodable image",
    "corrupt.jpg": "not a decodable image",
    "truncated.jpg": "truncated file",
    "corrupt_scan.jpg": "corrupt JPEG data",  # valid headers around garbage scan data: libjpeg only warns
    "truncated.png": "truncated file",
    "bomb.png": "too large",
    "bomb.jpg": "too large",
    "bomb_deep.jpg": "too large",  # the SOF marker sits behind 128 KiB of APP segments
}


def _cv_encode(img: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok, ext
    return buf.tobytes()


def _pil_encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _flat_bgr(rgb: tuple[int, int, int], dtype=np.uint8) -> np.ndarray:
    img = np.empty((*SIZE, 3), dtype=dtype)
    img[:] = rgb[::-1]
    return img


def _noise_jpeg(seed: int = 0) -> bytes:
    """A JPEG whose scan is long (noise compresses badly), so cutting it in half leaves headers and half a scan."""
    rng = np.random.default_rng(seed)
    return _cv_encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])


def _garbage_scan_jpeg(seed: int = 5) -> bytes:
    """Valid JPEG headers (up to the start-of-scan header) around random entropy-coded bytes and an end marker:
    libjpeg decodes it to noise and only warns ("Corrupt JPEG data: ..."), so only a strict decoder refuses it."""
    jpg = _noise_jpeg(seed)
    sos = jpg.find(b"\xff\xda")
    rng = np.random.default_rng(seed)
    garbage = rng.integers(0, 256, len(jpg) - sos - 16, dtype=np.uint8).tobytes().replace(b"\xff", b"\xfe")
    return jpg[:sos + 14] + garbage + b"\xff\xd9"


def _sof_offset(jpeg: bytes) -> int:
    """Byte offset of the first SOF0/SOF2 marker (the frame header holding height and width)."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        i = jpeg.find(marker)
        if i >= 0:
            return i
    raise AssertionError("no SOF marker in the JPEG")


def _jpeg_claiming(jpeg: bytes, height: int, width: int) -> bytes:
    """The same JPEG with its frame header patched to claim ``height`` x ``width`` (no pixel is allocated)."""
    i = _sof_offset(jpeg)
    return jpeg[:i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9:]


def _png_claiming(png: bytes, height: int, width: int) -> bytes:
    """The same PNG with its IHDR patched to claim ``height`` x ``width`` (the CRC no longer matches: irrelevant,
    the refusal must come from the header before anything is decoded)."""
    return png[:16] + struct.pack(">II", width, height) + png[24:]


def _files() -> dict[str, bytes]:
    good_jpg = _cv_encode(_flat_bgr(_RGB), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])
    noise_png = _cv_encode(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8), ".png")
    noise_jpg = _noise_jpeg()
    palette = Image.new("P", SIZE[::-1], 1)
    palette.putpalette([0, 0, 0, 40, 160, 220] + [0] * (256 * 3 - 6))
    rgba = np.dstack([_flat_bgr((10, 200, 60)), np.full(SIZE, 128, np.uint8)])
    rng = np.random.default_rng(2)
    app = b"\xff\xe2\xff\xff" + b"\0" * 65533  # an APP2 segment of the largest size a marker length allows
    files = {
        "good.jpg": good_jpg,
        "progressive.jpg": _pil_encode(Image.new("RGB", SIZE[::-1], _RGB), "JPEG", quality=95, progressive=True),
        "gray.jpg": _cv_encode(np.full(SIZE, 90, np.uint8), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]),
        "gray.png": _cv_encode(np.full(SIZE, 90, np.uint8), ".png"),
        "rgba.png": _cv_encode(rgba, ".png"),
        "gray_alpha.png": _pil_encode(Image.new("LA", SIZE[::-1], (70, 128)), "PNG"),
        "palette.png": _pil_encode(palette, "PNG"),
        "rgb16.png": _cv_encode(_flat_bgr((50000, 1000, 65535), np.uint16), ".png"),
        "cmyk.jpg": _pil_encode(Image.new("CMYK", SIZE[::-1], (0, 255, 255, 0)), "JPEG", quality=95),
        "trailing_bytes.jpg": good_jpg + b"\0" * 64 + b"trailer",
        "jpeg_named.png": good_jpg,
        "empty.jpg": b"",
        "text.jpg": b"name,identity\nthis is a text file with a .jpg name\n",
        # SOI + the JFIF APP0 segment, then random bytes (no frame header), then an end-of-image marker
        "corrupt.jpg": good_jpg[:20] + rng.integers(0, 256, 600, dtype=np.uint8).tobytes() + b"\xff\xd9",
        "truncated.jpg": noise_jpg[:len(noise_jpg) // 2],
        "corrupt_scan.jpg": _garbage_scan_jpeg(),
        "truncated.png": noise_png[:len(noise_png) // 2],
        "bomb.png": _png_claiming(_cv_encode(_flat_bgr(_RGB), ".png"), BOMB_SIDE, BOMB_SIDE),
        "bomb.jpg": _jpeg_claiming(good_jpg, BOMB_SIDE, BOMB_SIDE),
        "bomb_deep.jpg": good_jpg[:2] + app + app + _jpeg_claiming(good_jpg, BOMB_SIDE, BOMB_SIDE)[2:],
    }
    assert set(files) == set(_GOOD) | set(_SKIP)
    return files


def write_bad_images(folder: str | Path, subdir: str = "bad_person") -> dict[str, str]:
    """Write every kind under ``folder/subdir/``; {relpath: "ok" | "skip:<reason substring>"} (relpath from folder)."""
    out_dir = Path(folder) / subdir
    out_dir.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    for name, data in _files().items():
        (out_dir / name).write_bytes(data)
        expected[f"{subdir}/{name}"] = "ok" if name in _GOOD else f"skip:{_SKIP[name]}"
    return expected


def expected_rgb(relpath: str) -> tuple[tuple[int, int, int], int]:
    """((r, g, b), per-channel tolerance) that every pixel of the "ok" file ``relpath`` decodes to."""
    return _GOOD[relpath.rsplit("/", 1)[-1]]


def ok_paths(expected: dict[str, str]) -> list[str]:
    """The relpaths facemac must decode, sorted."""
    return sorted(p for p, e in expected.items() if e == "ok")


def skip_paths(expected: dict[str, str]) -> list[str]:
    """The relpaths facemac must refuse, sorted."""
    return sorted(p for p, e in expected.items() if e != "ok")
