"""insightface's RecordIO layout written without MXNet, for tests (no part of the package, which only reads it).

Byte-identical to MXNet 1.9.1's own writer (tests/data/recordio_mxnet was made by MXNet; test_readers_recordio checks).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facemac.data.recordio import _MAGIC_BYTES, IR_FORMAT, MAGIC


def frame(payload: bytes) -> bytes:
    """dmlc-core's RecordIOWriter framing, splitting at 4-byte-aligned magic words like the C++ writer does."""
    out, start, n = [], 0, len(payload)
    for i in range(0, n - n % 4, 4):
        if payload[i:i + 4] == _MAGIC_BYTES:
            out.append(struct.pack("<II", MAGIC, ((1 if start == 0 else 2) << 29) | (i - start)))
            out.append(payload[start:i])
            out.append(b"\0" * (-(i - start) % 4))
            start = i + 4
    out.append(struct.pack("<II", MAGIC, ((3 if start else 0) << 29) | (n - start)))
    out.append(payload[start:])
    out.append(b"\0" * (-(n - start) % 4))
    return b"".join(out)


def pack_header(flag_labels: float | Sequence[float], id1: int = 0, id2: int = 0) -> bytes:
    """IRHeader bytes: a scalar label (flag 0) or a float32 label vector (flag = its length)."""
    if isinstance(flag_labels, (int, float, np.integer, np.floating)):
        return struct.pack(IR_FORMAT, 0, float(flag_labels), id1, id2)
    arr = np.asarray(flag_labels, dtype="<f4")
    return struct.pack(IR_FORMAT, len(arr), 0.0, id1, id2) + arr.tobytes()


def write_recordio(root: str | Path, images: Sequence[bytes], labels: Sequence[int], prefix: str = "train",
                   insightface_header: bool = True) -> tuple[Path, Path]:
    """Write ``<prefix>.rec``/``.idx`` in insightface's layout (header record 0, images 1..N, one record per identity
    when each label's images are contiguous). Returns (rec, idx)."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rec, idx = root / f"{prefix}.rec", root / f"{prefix}.idx"
    n = len(images)
    runs: list[tuple[int, int, int]] = []  # (label, first index, end index)
    for i, lab in enumerate(labels, start=1):
        if runs and runs[-1][0] == lab:
            runs[-1] = (lab, runs[-1][1], i + 1)
        else:
            runs.append((int(lab), i, i + 1))
    grouped = len({r[0] for r in runs}) == len(runs)
    records: list[tuple[int, bytes]] = []
    if insightface_header:
        first = n + 1
        records.append((0, pack_header([first, first + (len(runs) if grouped else 0)])))
    for i, (img, lab) in enumerate(zip(images, labels), start=1):
        records.append((i if insightface_header else i - 1, pack_header(float(lab), i) + bytes(img)))
    if insightface_header and grouped:
        for k, (lab, a, b) in enumerate(runs):
            records.append((n + 1 + k, pack_header([a, b], lab)))
    with open(rec, "wb") as f, open(idx, "w", encoding="ascii") as fi:
        for i, payload in records:
            fi.write(f"{i}\t{f.tell()}\n")
            f.write(frame(payload))
    return rec, idx
