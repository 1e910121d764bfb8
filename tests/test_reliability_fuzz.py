"""Parsers under fuzzing: damaged label files, lists, CSVs, RecordIO pairs and images give a table or a FacemacError.

Any other exception (pandas' ValueError, UnicodeDecodeError, struct.error, IndexError, OverflowError, MemoryError,
a hang on a huge count, ...) is a reader bug: the user would get a traceback instead of the file and line to fix.
Hypothesis runs derandomized with a bounded number of examples, so CI sees the same inputs every time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from facemac.attributes import MAADFACE_ATTRIBUTES
from facemac.data.celeba import ATTR_FILE, IDENTITY_FILE, LANDMARKS_FILE, PARTITION_FILE, read_celeba
from facemac.data.decode import decode_image, verify_jpeg
from facemac.data.filelist import read_file_list
from facemac.data.labelcsv import read_label_csv
from facemac.data.maadface import read_maadface
from facemac.data.recordio import RecordIOSource, read_idx, read_recordio
from facemac.data.table import FaceTable
from facemac.errors import FacemacError
from tests.badimages import write_bad_images
from tests.fuzzing import edited, edited_binary, fuzz
from tests.readers_fixtures import tiny_jpeg, write_celeba_tree
from tests.recordio_writer import write_recordio

pytestmark = pytest.mark.timeout(300)  # a reader that loops on a huge count must fail, not hang CI

# 100 examples per property in the quick suite (the whole file takes ~15 s); 1000 behind the slow mark.
DEPTH = pytest.mark.parametrize("examples", [100, pytest.param(1000, marks=pytest.mark.slow, id="deep")])


def _event(what: str) -> None:
    """Count outcomes in hypothesis' statistics (pytest --hypothesis-show-statistics) to see both paths are hit."""
    if currently_in_test_context():
        event(what)


def _table_or_facemac_error(read, *args, **kwargs) -> FaceTable | None:
    """The reader's table, or None when it refused with a FacemacError; any other exception propagates."""
    try:
        table = read(*args, **kwargs)
    except FacemacError as e:
        assert str(e).strip(), "a FacemacError must say what is wrong"
        _event(f"refused: {type(e).__name__}")
        return None
    _event("read a table")
    assert isinstance(table, FaceTable)
    n = len(table.keys)
    assert n > 0 and all(isinstance(k, str) and k for k in table.keys)
    if table.labels is not None:
        assert table.labels.shape == (n, len(table.attributes)) and np.isin(table.labels, (0.0, 1.0)).all()
        assert table.mask.shape == table.labels.shape
    if table.splits is not None:
        assert table.splits.shape == (n,) and np.isin(table.splits, (0, 1, 2)).all()
    if table.landmarks is not None:
        assert table.landmarks.shape == (n, 5, 2)
    return table


class _Rewriter:
    """Holds a valid file; ``with r.replaced(data)`` swaps in a damaged copy and restores the original after."""

    def __init__(self, path: Path):
        self.path = path
        self.original = path.read_bytes()

    def put(self, data: bytes) -> None:
        self.path.write_bytes(data)

    def restore(self) -> None:
        self.path.write_bytes(self.original)


# ---------------------------------------------------------------- CelebA

@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    write_celeba_tree(root, n=6)
    return root


_CELEBA_FILES = [ATTR_FILE, PARTITION_FILE, IDENTITY_FILE, LANDMARKS_FILE]
_CELEBA_BASES = {}


def _celeba_base(name: str) -> bytes:
    if name not in _CELEBA_BASES:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            write_celeba_tree(Path(d), n=6)
            _CELEBA_BASES.update({f: (Path(d) / f).read_bytes() for f in _CELEBA_FILES})
    return _CELEBA_BASES[name]


@DEPTH
@pytest.mark.parametrize("name", _CELEBA_FILES)
def test_celeba_files_under_fuzzing(celeba_root, name, examples):
    @fuzz(examples)
    @given(data=edited(_celeba_base(name), sep=None))
    def check(data):
        r = _Rewriter(celeba_root / name)
        r.put(data)
        try:
            _table_or_facemac_error(read_celeba, celeba_root)
        finally:
            r.restore()

    check()
    assert _table_or_facemac_error(read_celeba, celeba_root) is not None  # the restored tree still reads


# ---------------------------------------------------------------- MAAD-Face

def _maad_csv(n_ids: int = 3, per_id: int = 2) -> bytes:
    rng = np.random.default_rng(0)
    attrs = list(MAADFACE_ATTRIBUTES[:6])
    rows = [f"n{k // per_id + 2:06d}/{k % per_id + 1:04d}_01.jpg,{k // per_id + 2},"
            + ",".join(str(v) for v in rng.choice([1, -1, 0], size=len(attrs))) for k in range(n_ids * per_id)]
    return ("Filename,Identity," + ",".join(attrs) + "\n" + "\n".join(rows) + "\n").encode()


@DEPTH
def test_maadface_csv_under_fuzzing(tmp_path_factory, examples):
    root = tmp_path_factory.mktemp("maad")

    @fuzz(examples)
    @given(data=edited(_maad_csv()))
    def check(data):
        (root / "MAAD_Face.csv").write_bytes(data)
        _table_or_facemac_error(read_maadface, root)

    check()


def _landmark_csv(n_ids: int = 3, per_id: int = 2) -> bytes:
    """VGGFace2's loose_landmark_train.csv for the rows of ``_maad_csv``: quoted names without extension."""
    rows = [f'"n{k // per_id + 2:06d}/{k % per_id + 1:04d}_01",'
            + ",".join(f"{40 + 7.5 * j + k:.2f}" for j in range(10)) for k in range(n_ids * per_id)]
    return ("NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y\n" + "\n".join(rows) + "\n").encode()


@DEPTH
def test_vggface2_landmarks_under_fuzzing(tmp_path_factory, examples):
    """A damaged landmark file gives a table whose rows all have finite points, or a FacemacError."""
    root = tmp_path_factory.mktemp("maad_lm")
    (root / "MAAD_Face.csv").write_bytes(_maad_csv(n_ids=3, per_id=2))
    (root / "bb_landmark").mkdir()

    @fuzz(examples)
    @given(data=edited(_landmark_csv(), sep=b","))
    def check(data):
        (root / "bb_landmark" / "loose_landmark_train.csv").write_bytes(data)
        table = _table_or_facemac_error(read_maadface, root, landmarks="auto", max_missing_landmarks=1.0)
        if table is not None:
            assert table.landmarks is not None and np.isfinite(table.landmarks).all()
            assert len(table.splits) == len(table.keys) == len(table.identities)

    check()


# ---------------------------------------------------------------- file lists and label CSVs

_PLAIN_LIST = b"# synthetic set\nimgs/b/1.jpg   7\n\nimgs/a/2.jpg\t3\nimgs\\a\\1.jpg 3\n"
_CSV_LIST = b"path,identity\nimgs/b/1.jpg,7\nimgs/a/2.jpg,3\n\"imgs/a/1,x.jpg\",3\n"
_LABEL_CSV = (b"path,identity,split,Smiling,Male,Young\n"
              b"id1/0.jpg,id1,train,1,0,\n"
              b"id2/0.jpg,id2,val,-1,1,0\n"
              b"id2/1.jpg, id2 ,test, 1.0 , 0 ,1\n")


@pytest.mark.parametrize("base,sep", [(_PLAIN_LIST, None), (_CSV_LIST, b",")], ids=["plain", "csv"])
@DEPTH
def test_file_list_under_fuzzing(tmp_path_factory, base, sep, examples):
    folder = tmp_path_factory.mktemp("lists")

    @fuzz(examples)
    @given(data=edited(base, sep=sep))
    def check(data):
        (folder / "list.txt").write_bytes(data)
        _table_or_facemac_error(read_file_list, folder / "list.txt")

    check()


@DEPTH
def test_label_csv_under_fuzzing(tmp_path_factory, examples):
    folder = tmp_path_factory.mktemp("labels")

    @fuzz(examples)
    @given(data=edited(_LABEL_CSV), subset=st.sampled_from([None, ["Young", "Smiling"]]))
    def check(data, subset):
        (folder / "labels.csv").write_bytes(data)
        _table_or_facemac_error(read_label_csv, folder / "labels.csv", attributes=subset)

    check()


# ---------------------------------------------------------------- RecordIO

@pytest.fixture(scope="module")
def recordio_pair(tmp_path_factory):
    """A small insightface pair: header record, 5 images (one real JPEG, four short stand-ins), 3 identity records;
    short payloads keep the file small, so the fuzzer's edits land on framing and headers, not inside images."""
    root = tmp_path_factory.mktemp("rec")
    images = [tiny_jpeg(1, size=(8, 8))] + [b"\xff\xd8img%d" % i for i in range(4)]
    write_recordio(root, images, [0, 0, 1, 2, 2])
    return root


def _read_every_record(table: FaceTable) -> None:
    """Every image of a table that did read: its bytes and pixels, or a FacemacError per record."""
    for key in table.keys:
        try:
            decode_image(table.source.read(key), key)
        except FacemacError:
            pass


WILD_FLOATS = [float("nan"), float("inf"), float("-inf"), 3e38, -3e38, 1e9, -1.0, -7.5, 0.0, 1.0, 2.5, 6.0, 9.0]


@DEPTH
def test_recordio_header_and_identity_records_with_wild_labels(examples):
    """insightface's record 0 and identity records hold (first, end) ranges as float32: NaN, inf, 3e38 or a
    negative range must be refused, not turned into range(1, 3e38) (a hang) or int(nan)."""
    import tempfile

    from tests.recordio_writer import frame, pack_header

    @fuzz(examples)
    @given(header=st.lists(st.sampled_from(WILD_FLOATS), min_size=0, max_size=3),
           ident=st.lists(st.sampled_from(WILD_FLOATS), min_size=0, max_size=3),
           label=st.sampled_from(WILD_FLOATS))
    def check(header, ident, label):
        with tempfile.TemporaryDirectory() as d:
            rec, idx = Path(d) / "train.rec", Path(d) / "train.idx"
            payloads = [pack_header(header if header else 0.0),
                        pack_header(label, 1) + tiny_jpeg(2, size=(8, 8)), pack_header(1.0, 2) + b"\xff\xd8x",
                        pack_header(ident if ident else 0.0, 1), pack_header([2.0, 3.0], 1)]
            with open(rec, "wb") as f, open(idx, "w", encoding="ascii") as fi:
                for i, payload in enumerate(payloads):
                    fi.write(f"{i}\t{f.tell()}\n")
                    f.write(frame(payload))
            table = _table_or_facemac_error(read_recordio, d)
            if table is not None:
                assert set(table.keys) <= {"1", "2", "3", "4"}
                _read_every_record(table)

    check()


@DEPTH
@pytest.mark.parametrize("which", ["rec", "idx"])
def test_recordio_under_fuzzing(recordio_pair, which, examples):
    rec, idx = _Rewriter(recordio_pair / "train.rec"), _Rewriter(recordio_pair / "train.idx")
    target = rec if which == "rec" else idx
    strategy = edited_binary(rec.original) if which == "rec" else edited(idx.original, sep=b"\t")

    @fuzz(examples)
    @given(data=strategy)
    def check(data):
        target.put(data)
        try:
            table = _table_or_facemac_error(read_recordio, recordio_pair)
            if table is not None:
                _read_every_record(table)
        finally:
            target.restore()

    check()


@DEPTH
def test_recordio_source_read_on_corrupted_records(recordio_pair, tmp_path_factory, examples):
    """A table indexed from a good pair whose .rec is damaged afterwards (a copy still syncing, a bad disk): each
    read is bytes or a DataError, never a struct.error or a half-record."""
    folder = tmp_path_factory.mktemp("rec_damaged")
    original = (recordio_pair / "train.rec").read_bytes()
    shutil.copy(recordio_pair / "train.idx", folder / "train.idx")
    offsets = read_idx(folder / "train.idx")

    @fuzz(examples)
    @given(data=edited_binary(original), key=st.sampled_from(sorted(offsets) + [99, -1]).map(str) | st.text(max_size=4))
    def check(data, key):
        (folder / "train.rec").write_bytes(data)
        src = RecordIOSource(folder / "train.rec", folder / "train.idx")
        try:
            out = src.read(key)
        except FacemacError:
            return
        assert isinstance(out, bytes)

    check()


# ---------------------------------------------------------------- images

@pytest.fixture(scope="module")
def image_bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    expected = write_bad_images(root)
    return [(root / p).read_bytes() for p, e in sorted(expected.items()) if e == "ok"]


@DEPTH
def test_decode_image_under_fuzzing(image_bases, examples):
    @fuzz(examples)
    @given(i=st.integers(0, len(image_bases) - 1), st_data=st.data())
    def check(i, st_data):
        data = st_data.draw(edited_binary(image_bases[i]))
        try:  # the GPU path's worker-side check: refuses or passes, nothing else
            verify_jpeg(data, "fuzz.img")
        except FacemacError:
            pass
        for reduce in (1, 2):  # full and DCT-reduced decodes take different strict-decoder calls
            try:
                out = decode_image(data, "fuzz.img", reduce)
            except FacemacError:
                continue
            assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8

    check()


# ---------------------------------------------------------------- benign edits are not errors

BENIGN = {
    "crlf": lambda b: b.replace(b"\n", b"\r\n"),  # saved on Windows
    "bom": lambda b: b"\xef\xbb\xbf" + b,  # saved by Excel / Notepad
    "blank_tail": lambda b: b + b"\n\n  \n",
    "no_final_newline": lambda b: b.rstrip(b"\n"),
}


def _same_table(a: FaceTable, b: FaceTable) -> None:
    assert a.keys == b.keys and a.identities == b.identities and a.attributes == b.attributes
    for field in ("labels", "mask", "splits", "landmarks"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=field)


@pytest.mark.parametrize("edit", sorted(BENIGN))
def test_benign_edits_read_the_same_table(tmp_path, edit):
    """Fuzzing must not be satisfied by a reader that refuses everything: harmless re-saves give the same table."""
    write_celeba_tree(tmp_path / "celeba", n=6)
    reference = read_celeba(tmp_path / "celeba")
    for name in _CELEBA_FILES:
        path = tmp_path / "celeba" / name
        original = path.read_bytes()
        path.write_bytes(BENIGN[edit](original))
        _same_table(read_celeba(tmp_path / "celeba"), reference)
        path.write_bytes(original)
    (tmp_path / "maad_lm" / "bb_landmark").mkdir(parents=True)
    (tmp_path / "maad_lm" / "MAAD_Face.csv").write_bytes(_maad_csv(n_ids=3, per_id=2))
    for fname, base, read in [("maad/MAAD_Face.csv", _maad_csv(), lambda p: read_maadface(p.parent)),
                              ("maad_lm/bb_landmark/loose_landmark_train.csv", _landmark_csv(),
                               lambda p: read_maadface(p.parent.parent, landmarks="auto")),
                              ("plain/list.txt", _PLAIN_LIST, read_file_list),
                              ("csv/list.csv", _CSV_LIST, read_file_list),
                              ("labels/labels.csv", _LABEL_CSV, read_label_csv)]:
        path = tmp_path / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base)
        reference = read(path)
        path.write_bytes(BENIGN[edit](base))
        _same_table(read(path), reference)


# ---------------------------------------------------------------- analysis label inputs

def _analysis_rows_or_facemac_error(path: Path) -> int | None:
    """What analyze.py does with a label file: sniff it, then stream its batches. Rows, or None when refused."""
    from facemac.analysis.inputs import expand_path

    try:
        (d,) = expand_path(path)
        rows = 0
        for batch in d.batches(d.attributes, batch_size=2):
            a = len(d.attributes)
            assert batch.values.shape == batch.valid.shape == (len(batch), a)
            assert np.isin(batch.values[batch.valid], (0.0, 1.0)).all()
            assert batch.identity_codes.shape == (len(batch),)
            assert (batch.identity_codes < len(batch.identity_names)).all()
            rows += len(batch)
    except FacemacError as e:
        assert str(e).strip(), "a FacemacError must say what is wrong"
        _event(f"refused: {type(e).__name__}")
        return None
    _event("read")
    return rows


_DEMO_LABELS = (b"path,identity,Male,Young,Smiling\n"
                b"id1/0.jpg,id1,1,0,1\n"
                b"id1/1.jpg,id1,1,0,0\n"
                b"id2/0.jpg,id2,0,1,\n")


@DEPTH
@pytest.mark.parametrize("kind", ["celeba", "maadface", "labels"])
def test_analysis_label_inputs_under_fuzzing(tmp_path_factory, kind, examples):
    """analysis/readers.py parses the same label formats for counting (streamed, no FaceTable)."""
    folder = tmp_path_factory.mktemp(f"an_{kind}")
    if kind == "celeba":
        name, base, sep = ATTR_FILE, _celeba_base(ATTR_FILE), None
        (folder / IDENTITY_FILE).write_bytes(_celeba_base(IDENTITY_FILE))
    elif kind == "maadface":
        name, base, sep = "MAAD_Face.csv", _maad_csv(), b","
    else:
        name, base, sep = "labels.csv", _DEMO_LABELS, b","
    (folder / name).write_bytes(base)
    assert _analysis_rows_or_facemac_error(folder / name)  # the valid file reads

    @fuzz(examples)
    @given(data=edited(base, sep=sep))
    def check(data):
        (folder / name).write_bytes(data)
        _analysis_rows_or_facemac_error(folder / name)

    check()
