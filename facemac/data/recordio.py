"""insightface's packed `train.rec` + `train.idx` (MXNet RecordIO), read without MXNet (tests/recordio_writer.py writes
the same layout, for tests).

Record framing (dmlc-core): uint32 magic 0xced7230a, uint32 lrecord (upper 3 bits = continuation flag, lower 29 =
length), payload, zero padding to 4 bytes. A payload that contains the magic word at a 4-byte boundary is split into
parts (flag 1 = first, 2 = middle, 3 = last) and the reader re-inserts the magic between them. Each payload starts
with an IRHeader '<IfQQ' (flag, label, id, id2); when flag > 0, `flag` float32 labels follow; then the encoded image.

insightface layout: record 0 is a header without an image whose labels are (first identity record, end); records
1 .. first-1 are images; records first .. end-1 are one per identity, labels (first image, end image) of its range.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facemac.data.layout import require_file
from facemac.data.table import FaceTable
from facemac.errors import DataError
from facemac.progress import progress_bar

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24
RECORDIO_LAYOUT = "insightface's packed pair train.rec + train.idx (idx lines 'index<TAB>offset')"


def resolve_pair(root: str | Path) -> tuple[Path, Path]:
    """(rec, idx) from a folder holding train.rec/train.idx (or a single *.rec pair), or from the .rec path."""
    root = Path(root).expanduser()
    if root.is_dir():
        rec = root / "train.rec"
        if not rec.exists():
            recs = sorted(root.glob("*.rec"))
            if len(recs) == 1:
                rec = recs[0]
    else:
        rec = root
    rec = require_file(rec, RECORDIO_LAYOUT)
    idx = require_file(rec.with_suffix(".idx"), f"the index beside {rec.name} ({RECORDIO_LAYOUT})")
    return rec, idx


def read_idx(idx_path: str | Path) -> dict[int, int]:
    """Record index -> byte offset, from MXNet's .idx text file."""
    idx_path = Path(idx_path)
    out: dict[int, int] = {}
    with open(idx_path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.decode("ascii", errors="replace")
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 2 or not line.isascii():
                    raise ValueError
                index, offset = int(parts[0]), int(parts[1])
                if index < 0 or not 0 <= offset < 1 << 62:
                    raise ValueError
                out[index] = offset
            except ValueError:
                raise DataError(f"{idx_path}, line {lineno}: {line.strip()[:60]!r} is not 'index<TAB>offset' "
                                "(two non-negative integers)") from None
    if not out:
        raise DataError(f"{idx_path} lists no records; expected {RECORDIO_LAYOUT}")
    return out


def _read_payload(fd: int, offset: int, path: Path) -> bytes:
    """The whole (re-joined) payload of the record starting at ``offset``."""
    parts: list[bytes] = []
    size = os.fstat(fd).st_size
    while True:
        head = os.pread(fd, 8, offset)
        if len(head) != 8:
            raise DataError(f"{path}: truncated record header at byte {offset}")
        magic, lrec = struct.unpack("<II", head)
        if magic != MAGIC:
            raise DataError(f"{path}: no RecordIO magic at byte {offset} (index points into the middle of a record "
                            "or the file is not MXNet RecordIO)")
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        if offset + 8 + length > size:  # checked before reading: a flipped length must not allocate 512 MiB
            raise DataError(f"{path}: record at byte {offset} claims {length} bytes but the file ends at byte {size} "
                            "(truncated or corrupt)")
        data = os.pread(fd, length, offset + 8)
        if len(data) != length:
            raise DataError(f"{path}: record at byte {offset} is truncated ({len(data)} of {length} bytes)")
        parts.append(data)
        if cflag in (0, 3):
            return _MAGIC_BYTES.join(parts)
        offset += 8 + ((length + 3) & ~3)


def unpack_header(payload: bytes) -> tuple[int, np.ndarray, int, int, bytes]:
    """(flag, labels float32 [max(flag, 1)], id, id2, image bytes) of one payload."""
    if len(payload) < IR_SIZE:
        raise ValueError(f"payload of {len(payload)} bytes is shorter than an IRHeader")
    flag, label, id1, id2 = struct.unpack_from(IR_FORMAT, payload)
    if flag > 0:
        end = IR_SIZE + 4 * flag
        if end > len(payload):
            raise ValueError(f"IRHeader announces {flag} labels but the payload has {len(payload)} bytes")
        labels = np.frombuffer(payload[IR_SIZE:end], dtype="<f4").copy()
        return flag, labels, id1, id2, payload[end:]
    return flag, np.array([label], dtype=np.float32), id1, id2, payload[IR_SIZE:]


class RecordIOSource:
    """ImageSource over a .rec/.idx pair; keys are record indices as strings. Opens the file lazily in each
    process (DataLoader workers fork or spawn with a pickled copy) and reads with pread, so threads can share it."""

    def __init__(self, rec_path: str | Path, idx_path: str | Path):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path)
        self._offsets: dict[int, int] | None = None
        self._fd: int | None = None
        self._pid: int | None = None

    @property
    def offsets(self) -> dict[int, int]:
        if self._offsets is None:
            self._offsets = read_idx(self.idx_path)
        return self._offsets

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.rec_path, os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def payload(self, index: int) -> bytes:
        """The raw payload (IRHeader + image) of record ``index``."""
        try:
            offset = self.offsets[index]
        except KeyError:
            raise DataError(f"{self.idx_path} has no record {index}") from None
        return _read_payload(self._file(), offset, self.rec_path)

    def read(self, key: str) -> bytes:
        try:
            return unpack_header(self.payload(int(key)))[4]
        except ValueError as e:
            raise DataError(f"{self.rec_path}, record {key}: {e}") from None

    def describe(self) -> str:
        return f"RecordIO {self.rec_path}"

    def __getstate__(self) -> dict:
        return {"rec_path": str(self.rec_path), "idx_path": str(self.idx_path), "offsets": self._offsets}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["rec_path"], state["idx_path"])
        self._offsets = state["offsets"]

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass


def _header_labels(source: RecordIOSource, indices: Sequence[int]) -> list[tuple[int, float, int]]:
    """(index, first label, image byte count) of each record, reading only its framing and IRHeader."""
    fd, out = source._file(), []
    for i in progress_bar(indices, desc=f"index {source.rec_path.name}", unit="rec", leave=False,
                  disable=len(indices) < 100_000):
        off = source.offsets[i]
        head = os.pread(fd, 8 + IR_SIZE, off)
        if len(head) < 8 + IR_SIZE or struct.unpack_from("<I", head)[0] != MAGIC:
            raise DataError(f"{source.rec_path}: no valid record {i} at byte {off} (truncated or not RecordIO)")
        lrec = struct.unpack_from("<I", head, 4)[0]
        flag, label, _, _ = struct.unpack_from(IR_FORMAT, head, 8)
        if flag > 0:
            first = os.pread(fd, 4, off + 8 + IR_SIZE)
            if len(first) != 4:
                raise DataError(f"{source.rec_path}: record {i} at byte {off} is truncated inside its labels")
            label = struct.unpack("<f", first)[0]
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        image_bytes = 1 if cflag == 1 else length - IR_SIZE - 4 * flag
        out.append((i, label, image_bytes))
    return out


def _record_range(lab: np.ndarray, low: int, high: int, rec: Path, r: int) -> tuple[int, int]:
    """(first, end) of an insightface header/identity record, checked to be a range of this file's records."""
    if len(lab) < 2 or not np.isfinite(lab[:2]).all() or not low <= lab[0] <= lab[1] <= high:
        raise DataError(f"{rec}, record {r}: labels {lab[:2].tolist()} are not a record range within "
                        f"[{low}, {high}]; expected {RECORDIO_LAYOUT}")
    return int(lab[0]), int(lab[1])


def read_recordio(root: str | Path, geometry: str = "arcface_112", name: str | None = None) -> FaceTable:
    """FaceTable of the image records of an insightface pair; identity = the IRHeader label (as an int string)."""
    rec, idx = resolve_pair(root)
    source = RecordIOSource(rec, idx)
    offsets = source.offsets
    images: list[int] | None = None
    id_records: list[int] = []
    last = max(offsets)
    if 0 in offsets:
        try:
            flag, lab, *_ , img = unpack_header(source.payload(0))
        except ValueError as e:
            raise DataError(f"{rec}, record 0: {e}") from None
        if flag > 0 and not img and len(lab) >= 2:  # insightface's header record
            first, end = _record_range(lab, 1, last + 1, rec, 0)
            images = [i for i in range(1, first) if i in offsets]
            id_records = [i for i in range(first, end) if i in offsets]
    labels: dict[int, float] = {}
    if images is not None and id_records:
        # one identity record per person: read the first image of each range, not millions of image headers
        starts = []
        for r in id_records:
            try:
                _, lab, *_ = unpack_header(source.payload(r))
            except ValueError as e:
                raise DataError(f"{rec}, record {r}: {e}") from None
            starts.append(_record_range(lab, 0, last + 1, rec, r))
        heads = {i: lab for i, lab, _ in _header_labels(source, [a for a, _ in starts if a in offsets])}
        for a, b in starts:
            if a in heads:
                labels.update(dict.fromkeys(range(a, b), heads[a]))
        if any(i not in labels for i in images):  # ranges do not cover every image: fall back to the headers
            labels = {}
    if not labels:
        candidates = images if images is not None else sorted(offsets)
        heads = _header_labels(source, candidates)
        images = [i for i, _, n in heads if n > 0]
        labels = {i: lab for i, lab, _ in heads}
    if not images:
        raise DataError(f"{rec} holds no image records; expected {RECORDIO_LAYOUT}")
    bad = next((i for i in images if not math.isfinite(labels[i])), None)
    if bad is not None:
        raise DataError(f"{rec}, record {bad}: identity label {labels[bad]} is not a number")
    identities = [str(int(labels[i])) for i in images]
    return FaceTable(name=name or rec.parent.name, source=source, keys=[str(i) for i in images],
                     identities=identities, geometry=geometry)
