"""JPEG decoding per core: candidate decoders on 112x112 face crops and CelebA-size (178x218) JPEGs.

Every candidate decodes the same bytes (held in memory: no disk reads) to an HxWx3 uint8 RGB array, on one thread
(`cv2.setNumThreads(1)`), so the figure is images/s per core. "reduced" variants decode at 1/2 scale inside libjpeg
(DCT scaling): worth it when the model's input is at most half the stored size (landmarks then scale by 1/2).
"facemac decode_image" is what training and annotation run: a strict libjpeg-turbo decode (simplejpeg) that refuses
corrupt scan data; "cv2 lenient" is the OpenCV decode it replaced (the same pixels, no corruption check), so the
difference between the two rows is what the check costs.

    python benchmarks/decode_throughput.py [--images 400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemac.data.decode import _JPEG_FLAGS, decode_image, verify_jpeg  # noqa: E402

cv2.setNumThreads(1)


def face_jpegs(n: int, h: int, w: int, quality: int = 95, seed: int = 0) -> list[bytes]:
    """n face-like JPEGs: the demo renderer's faces when available, else smooth noise, at h x w."""
    try:
        from facemac.data.demo.contact_sheet import sample_pool

        faces, _ = sample_pool("real_a", seed, max(1, n // 4), 4)
    except Exception:  # noqa: BLE001 - any renderer problem: fall back to noise
        rng = np.random.default_rng(seed)
        faces = [cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (112, 112)) for _ in range(n)]
    out = []
    for i in range(n):
        img = cv2.resize(np.asarray(faces[i % len(faces)]), (w, h), interpolation=cv2.INTER_CUBIC)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(buf.tobytes())
    return out


def candidates() -> dict[str, Callable[[bytes], np.ndarray]]:
    from PIL import Image

    c: dict[str, Callable[[bytes], np.ndarray]] = {
        "facemac decode_image (strict)": lambda b: decode_image(b),
        "facemac decode_image 1/2 (strict)": lambda b: decode_image(b, reduce=2),
        "verify_jpeg (GPU-path worker check)": lambda b: verify_jpeg(b, "x"),
        "cv2 lenient (decode_image before)": lambda b: cv2.imdecode(
            np.frombuffer(b, np.uint8), _JPEG_FLAGS[1] | cv2.IMREAD_IGNORE_ORIENTATION),
        "cv2.imdecode COLOR + cvtColor": lambda b: cv2.cvtColor(
            cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
        "cv2.imdecode REDUCED_COLOR_2": lambda b: cv2.cvtColor(
            cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_REDUCED_COLOR_2), cv2.COLOR_BGR2RGB),
        "PIL open + convert RGB": lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")),
    }

    def pil_draft(b: bytes) -> np.ndarray:
        im = Image.open(io.BytesIO(b))
        im.draft("RGB", (im.width // 2, im.height // 2))
        return np.asarray(im.convert("RGB"))

    c["PIL draft 1/2"] = pil_draft
    try:
        import simplejpeg

        c["simplejpeg RGB"] = lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB")
        c["simplejpeg RGB 1/8 (smallest scale)"] = lambda b: simplejpeg.decode_jpeg(
            b, colorspace="RGB", min_height=1, min_width=1, min_factor=2)
    except ImportError:
        pass
    return c


def rate(fn: Callable[[bytes], np.ndarray], data: list[bytes], repeat: int) -> float:
    for b in data[:20]:
        fn(b)
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        for b in data:
            fn(b)
        best = max(best, len(data) / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3, help="best of N passes (a shared CPU: best = least disturbed)")
    args = ap.parse_args()
    sets = {"112x112": face_jpegs(args.images, 112, 112), "178x218": face_jpegs(args.images, 218, 178)}
    load = os.getloadavg()[0]
    results: dict[str, dict[str, float]] = {}
    for name, fn in candidates().items():
        results[name] = {k: rate(fn, v, args.repeat) for k, v in sets.items()}
    load = max(load, os.getloadavg()[0])
    sizes = {k: int(np.mean([len(b) for b in v])) for k, v in sets.items()}
    print(f"images/s per core (best of {args.repeat}), {args.images} JPEGs each, mean bytes {sizes}, load {load:.2f}")
    print(f"{'decoder':36s} {'112x112':>9s} {'178x218':>9s}")
    for name, r in results.items():
        print(f"{name:36s} {r['112x112']:9.0f} {r['178x218']:9.0f}")
    print(json.dumps({"bench": "decode", "load1": round(load, 2), "images": args.images,
                      "per_core_img_s": {n: {k: round(v) for k, v in r.items()} for n, r in results.items()}}))


if __name__ == "__main__":
    main()
