"""insightface RecordIO without MXNet: framing checked byte-for-byte, write/read round trips, pickling, errors."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

from facemac.data.decode import decode_image
from facemac.data.recordio import MAGIC, RecordIOSource, read_recordio, unpack_header
from facemac.data.registry import build_table
from facemac.errors import ConfigError, DataError
from tests.readers_fixtures import tiny_jpeg
from tests.recordio_writer import write_recordio


def _frame_by_hand(payload: bytes) -> bytes:
    """An independent encoding of one unsplit record (the spec's words, not the module's code)."""
    return struct.pack("<II", MAGIC, len(payload)) + payload + b"\0" * ((4 - len(payload) % 4) % 4)


def test_bytes_match_a_hand_built_file(tmp_path):
    img = b"\xff\xd8abc"  # 5 bytes: forces padding
    rec, idx = write_recordio(tmp_path, [img], [7])
    hdr0 = struct.pack("<IfQQ", 2, 0.0, 0, 0) + np.array([2, 3], "<f4").tobytes()
    r1 = struct.pack("<IfQQ", 0, 7.0, 1, 0) + img
    id_rec = struct.pack("<IfQQ", 2, 0.0, 7, 0) + np.array([1, 2], "<f4").tobytes()
    expected = _frame_by_hand(hdr0) + _frame_by_hand(r1) + _frame_by_hand(id_rec)
    assert rec.read_bytes() == expected
    off1 = len(_frame_by_hand(hdr0))
    assert idx.read_text() == f"0\t0\n1\t{off1}\n2\t{off1 + len(_frame_by_hand(r1))}\n"


def test_round_trip_image_for_image_label_for_label(tmp_path):
    labels = [0, 0, 0, 1, 5, 5, 2]
    images = [tiny_jpeg(i) for i in range(len(labels))]
    write_recordio(tmp_path, images, labels)
    t = read_recordio(tmp_path)
    assert t.keys == [str(i) for i in range(1, 8)]  # record 0 and identity records are not images
    assert t.identities == [str(v) for v in labels]
    assert [t.source.read(k) for k in t.keys] == images
    assert t.geometry == "arcface_112" and t.labels is None
    assert decode_image(t.source.read("4"), "4").shape == (16, 16, 3)


def test_ungrouped_labels_and_plain_im2rec_layout(tmp_path):
    labels = [3, 1, 3, 2]  # label 3 is not contiguous: no identity records, labels come from each header
    images = [tiny_jpeg(i) for i in range(4)]
    write_recordio(tmp_path / "a", images, labels)
    t = read_recordio(tmp_path / "a")
    assert t.identities == ["3", "1", "3", "2"] and [t.source.read(k) for k in t.keys] == images
    write_recordio(tmp_path / "b", images, labels, insightface_header=False)  # record 0 is an image
    t = read_recordio(tmp_path / "b" / "train.rec")
    assert t.keys == ["0", "1", "2", "3"] and t.identities == ["3", "1", "3", "2"]
    assert [t.source.read(k) for k in t.keys] == images


def test_payload_containing_the_magic_word_is_split_and_rejoined(tmp_path):
    magic = struct.pack("<I", MAGIC)
    # IRHeader is 24 bytes, so offset 24 + 8 of the payload is 4-byte aligned: the writer must split there
    tricky = b"\xff\xd8\x00\x00" + b"abcd" + magic + b"efgh" + magic + magic + b"xyz"
    write_recordio(tmp_path, [tricky, tiny_jpeg(1)], [0, 1])
    raw = (tmp_path / "train.rec").read_bytes()
    assert raw.count(magic) > 3 + 3  # 3 records + the split parts' own headers
    t = read_recordio(tmp_path)
    assert t.source.read("1") == tricky and t.source.read("2") == tiny_jpeg(1)
    flag, lab, id1, _, img = unpack_header(t.source.payload(1))
    assert (flag, float(lab[0]), id1, img) == (0, 0.0, 1, tricky)


def test_source_pickles_and_reads_after(tmp_path):
    images = [tiny_jpeg(i) for i in range(3)]
    write_recordio(tmp_path, images, [0, 1, 2])
    src = read_recordio(tmp_path).source
    src.read("1")  # open the file in this process first
    clone = pickle.loads(pickle.dumps(src))
    assert isinstance(clone, RecordIOSource) and clone.read("3") == images[2]
    fresh = RecordIOSource(tmp_path / "train.rec", tmp_path / "train.idx")
    assert pickle.loads(pickle.dumps(fresh)).read("2") == images[1]


def test_errors(tmp_path):
    write_recordio(tmp_path, [tiny_jpeg(0)], [0])
    src = RecordIOSource(tmp_path / "train.rec", tmp_path / "train.idx")
    with pytest.raises(DataError, match="has no record 9"):
        src.read("9")
    (tmp_path / "train.idx").write_text("0\t0\n1\t3\n")
    with pytest.raises(DataError, match=r"train\.rec: no RecordIO magic at byte 3"):
        RecordIOSource(tmp_path / "train.rec", tmp_path / "train.idx").read("1")
    (tmp_path / "train.idx").write_text("0 0\nbroken\n")
    with pytest.raises(DataError, match=r"train\.idx, line 2"):
        read_recordio(tmp_path)
    (tmp_path / "train.idx").unlink()
    with pytest.raises(DataError, match=r"train\.idx does not exist"):
        read_recordio(tmp_path)
    with pytest.raises(ConfigError, match=r"dataset\.root=.*missing does not exist.*train\.rec and train\.idx"):
        build_table({"format": "recordio", "root": str(tmp_path / "missing")})


def test_reads_a_pair_written_by_mxnet(tmp_path):
    """tests/data/recordio_mxnet was written by MXNet 1.9.1 itself (an independent oracle, incl. a split record)."""
    import json
    from pathlib import Path

    data = Path(__file__).parent / "data" / "recordio_mxnet"
    expected = json.loads((data / "expected.json").read_text())
    t = read_recordio(data)
    assert t.keys == ["1", "2", "3", "4"]
    assert t.identities == [str(v) for v in expected["labels"]]
    assert [t.source.read(k).hex() for k in t.keys] == expected["images_hex"]
    assert decode_image(t.source.read("1"), "1").shape == (8, 8, 3)
    # and facemac's writer produces the very same bytes from the same content
    images = [bytes.fromhex(h) for h in expected["images_hex"]]
    rec, idx = write_recordio(tmp_path, images, expected["labels"])
    assert rec.read_bytes() == (data / "train.rec").read_bytes()
    assert idx.read_text() == (data / "train.idx").read_text()


def test_dataloader_workers_read_records(tmp_path):
    import torch
    from torch.utils.data import DataLoader

    from facemac.data.dataset import FaceDataset, collate_faces
    from facemac.data.preprocess import Preprocessor

    images = [tiny_jpeg(i) for i in range(6)]
    write_recordio(tmp_path, images, [0, 0, 1, 1, 2, 2])
    table = read_recordio(tmp_path)
    ds = FaceDataset(table, Preprocessor("resize", 16))
    seen = []
    for batch in DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_faces):
        assert not batch["failures"]
        seen.extend(batch["index"].tolist())
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (3, 16, 16)
    assert sorted(seen) == list(range(6))
