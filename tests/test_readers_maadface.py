"""MAAD-Face: 0-coded cells masked (never negatives), header-driven attributes, identity-disjoint seeded splits."""

from __future__ import annotations

import numpy as np
import pytest

from facemac.attributes import MAADFACE_ATTRIBUTES
from facemac.data.maadface import identity_splits, read_maadface
from facemac.errors import ConfigError, DataError
from tests.readers_fixtures import write_image


def _write(root, n_ids=6, per_id=3, attrs=MAADFACE_ATTRIBUTES, seed=0):
    rng = np.random.default_rng(seed)
    rows, files, ids = [], [], []
    values = rng.choice([1, -1, 0], size=(n_ids * per_id, len(attrs)), p=[0.4, 0.4, 0.2])
    for k in range(n_ids * per_id):
        ident = f"n{k // per_id + 2:06d}"
        f = f"{ident}/{k % per_id + 1:04d}_01.jpg"
        files.append(f)
        ids.append(ident)
        rows.append(",".join([f, str(k // per_id + 2)] + [str(v) for v in values[k]]))
    (root / "MAAD_Face.csv").write_text("Filename,Identity," + ",".join(attrs) + "\n" + "\n".join(rows) + "\n")
    write_image(root / "images" / files[0])
    return files, values


def test_mask_excludes_exactly_the_zero_cells(tmp_path):
    files, values = _write(tmp_path)
    t = read_maadface(tmp_path)
    assert t.keys == files and t.attributes == list(MAADFACE_ATTRIBUTES)
    np.testing.assert_array_equal(t.mask, values != 0)
    np.testing.assert_array_equal(t.labels, (values == 1).astype(np.float32))
    assert t.labels[values == 0].sum() == 0  # undefined cells carry label 0, hidden by the mask
    assert t.source.read(files[0]) == (tmp_path / "images" / files[0]).read_bytes()
    assert t.geometry == "loose"


def test_header_driven_subset(tmp_path):
    attrs = ["Young", "Male", "Smiling"]
    files, values = _write(tmp_path, attrs=attrs)
    t = read_maadface(tmp_path, attributes=["Smiling", "Young"])
    assert t.attributes == ["Smiling", "Young"]
    np.testing.assert_array_equal(t.mask, values[:, [2, 0]] != 0)
    with pytest.raises(ConfigError, match=r"Bald.*valid names: Young, Male, Smiling"):
        read_maadface(tmp_path, attributes=["Bald"])


def test_identity_disjoint_and_fractions():
    ids = [f"n{i:06d}" for i in range(4000) for _ in range(2)]
    s = identity_splits(ids, 0.1, 0.2, seed=0)
    per_id = {}
    for ident, sp in zip(ids, s):
        per_id.setdefault(ident, set()).add(int(sp))
    assert all(len(v) == 1 for v in per_id.values())
    frac = np.bincount([next(iter(v)) for v in per_id.values()], minlength=3) / len(per_id)
    np.testing.assert_allclose(frac, [0.7, 0.1, 0.2], atol=0.03)
    np.testing.assert_array_equal(s, identity_splits(ids, 0.1, 0.2, seed=0))  # deterministic
    assert (s != identity_splits(ids, 0.1, 0.2, seed=1)).any()  # the seed reshuffles
    with pytest.raises(ConfigError, match="val_fraction"):
        identity_splits(ids, 0.6, 0.5)


def test_table_splits_identity_disjoint(tmp_path):
    _write(tmp_path, n_ids=40, per_id=2, attrs=["Male"])
    t = read_maadface(tmp_path, val_fraction=0.3, test_fraction=0.3)
    groups = [set(t.split(name).identities) for name in ("train", "val", "test")]
    assert all(groups) and not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])


def test_bad_cells_and_files(tmp_path):
    (tmp_path / "MAAD_Face.csv").write_text("Filename,Identity,Male,Young\na/1.jpg,1,1,0\na/2.jpg,1,1\n")
    with pytest.raises(DataError, match=r"MAAD_Face\.csv, line 3: 3 fields, but the header has 4"):
        read_maadface(tmp_path)
    (tmp_path / "MAAD_Face.csv").write_text("Filename,Identity,Male,Young\na/1.jpg,1,1,0\na/2.jpg,1,1,2\n")
    with pytest.raises(DataError, match=r"line 3, column 'Young': 2 is not 1, -1 or 0"):
        read_maadface(tmp_path)
    (tmp_path / "MAAD_Face.csv").write_text("Filename,Identity,Male,Young\na/1.jpg,1,1,0,1\n")
    with pytest.raises(DataError, match=r"MAAD_Face\.csv, line 2: 5 fields, but the header has 4"):
        read_maadface(tmp_path)
    (tmp_path / "MAAD_Face.csv").write_text("Filename,Identity,Male,Young\na/1.jpg,1,1,0\na/2.jpg,1,1,\n")
    with pytest.raises(DataError, match=r"line 3, column 'Young': missing"):
        read_maadface(tmp_path)
    with pytest.raises(DataError, match=r"other\.csv does not exist"):
        read_maadface(tmp_path, csv="other.csv")
    with pytest.raises(DataError, match=r"pics does not exist.*dataset\.images_dir"):
        read_maadface(tmp_path, images_dir="pics")


# ---------------------------------------------------------------- VGGFace2 landmarks (bb_landmark/)

LM_HEADER = "NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y\n"


def _lm_row(name, k=0.0):
    pts = [75.81 + k, 110.21, 130.5 + k, 108.9, 103.2, 140.7, 80.1, 170.3, 125.6, 169.8]
    return f'"{name}",' + ",".join(f"{v:.2f}" for v in pts) + "\n"


def _write_landmarks(folder, files, train=None, test=None):
    """VGGFace2's two landmark files: quoted names without extension; the last identity's images in the test file."""
    stems = [f.rsplit(".", 1)[0] for f in files]
    train = stems[:-3] if train is None else train
    test = stems[-3:] if test is None else test
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loose_landmark_train.csv").write_text(LM_HEADER + "".join(_lm_row(s, i) for i, s in enumerate(train)))
    (folder / "loose_landmark_test.csv").write_text(LM_HEADER + "".join(_lm_row(s, 50 + i) for i, s in enumerate(test)))


def test_landmarks_from_both_vggface2_files_join_on_the_file_name(tmp_path):
    files, _ = _write(tmp_path)
    _write_landmarks(tmp_path / "bb_landmark", files)
    table = read_maadface(tmp_path, images_dir="images", landmarks="auto")
    assert table.landmarks.shape == (len(files), 5, 2) and table.keys == files
    np.testing.assert_allclose(table.landmarks[0], [[75.81, 110.21], [130.5, 108.9], [103.2, 140.7], [80.1, 170.3],
                                                    [125.6, 169.8]], atol=1e-4)
    np.testing.assert_allclose(table.landmarks[-1, 0, 0], 75.81 + 52, atol=1e-4)  # from the test file
    assert read_maadface(tmp_path, images_dir="images").landmarks is None  # landmarks=None reads none


def test_images_without_landmarks_are_skipped_with_a_count_or_fail_beyond_the_share(tmp_path, caplog):
    files, _ = _write(tmp_path, n_ids=6, per_id=3)
    stems = [f.rsplit(".", 1)[0] for f in files]
    _write_landmarks(tmp_path / "bb_landmark", files, train=stems[1:-3])  # the first image is in neither file
    with pytest.raises(DataError, match=r"1 of 18 MAAD-Face images \(5\.56%\) have no usable landmarks.*"
                                        r"n000002/0001_01\.jpg.*max_missing_landmarks=0\.01"):
        read_maadface(tmp_path, landmarks="auto")
    with caplog.at_level("WARNING"):
        table = read_maadface(tmp_path, landmarks="auto", max_missing_landmarks=0.1)
    assert len(table) == 17 and files[0] not in table.keys and len(table.splits) == 17
    assert "1 of 18" in caplog.text and "n000002/0001_01.jpg" in caplog.text


def test_landmark_location_auto_folder_file_list_and_missing(tmp_path):
    files, _ = _write(tmp_path)
    _write_landmarks(tmp_path / "vgg" / "bb_landmark", files)
    (tmp_path / "vgg" / "train").mkdir()
    assert read_maadface(tmp_path, images_dir="vgg/train", landmarks="auto").landmarks is not None  # beside images
    assert read_maadface(tmp_path, landmarks="vgg/bb_landmark").landmarks is not None
    both = [tmp_path / "vgg/bb_landmark/loose_landmark_train.csv", "vgg/bb_landmark/loose_landmark_test.csv"]
    assert len(read_maadface(tmp_path, landmarks=both)) == len(files)
    with pytest.raises(ConfigError, match=r"dataset\.landmarks=auto: no bb_landmark/.*dataset\.align=resize"):
        read_maadface(tmp_path, landmarks="auto")
    with pytest.raises(ConfigError, match=r"dataset\.landmarks=nope\.csv: .* does not exist"):
        read_maadface(tmp_path, landmarks="nope.csv")


def test_registry_warps_maadface_with_landmarks_unless_resize_is_chosen(tmp_path):
    from facemac.data.registry import build_table

    files, _ = _write(tmp_path)
    cfg = {"format": "maadface", "name": "maadface", "root": str(tmp_path), "landmarks": "auto", "align": "arcface"}
    with pytest.raises(ConfigError, match="dataset.align=resize"):
        build_table(cfg)
    assert build_table({**cfg, "align": "resize"}).landmarks is None  # the explicit opt-in reads no landmarks
    _write_landmarks(tmp_path / "bb_landmark", files)
    assert build_table(cfg).landmarks.shape == (len(files), 5, 2)


@pytest.mark.parametrize("text,match", [
    ("NAME_ID,X1,Y1\n", r"line 1: header 'NAME_ID,X1,Y1'"),
    (LM_HEADER, r"header only, no rows"),
    (LM_HEADER + '"a/1",1,2,3,4,5,6,7,8,9\n', r"line 2: 10 fields, but the header has 11"),
    (LM_HEADER + '"a/1",1,2,3,4,5,6,7,8,9,x\n', r"line 2, column 'P5Y': 'x' is not a number"),
    (LM_HEADER + '"a/1",1,2,3,4,5,6,7,8,9,\n', r"line 2, column P5Y: missing"),
    (LM_HEADER + '"a/1",1,2,3,4,5,6,7,8,9,10\n"a/2",1,2,3,inf,5,6,7,8,9,10\n', r"line 3, column P2Y: inf is no pixel"),
    (LM_HEADER + '"a/1",1,2,3,4,5,6,7,8,9,1e9\n', r"line 2, column P5Y: 1e\+09 is no pixel"),
    (LM_HEADER + '"",1,2,3,4,5,6,7,8,9,10\n', r"line 2: empty NAME_ID"),
    (LM_HEADER + '"a/1",1,2,3,4,5,6,7,8,9,10\n"a/1",1,2,3,4,5,6,7,8,9,10\n',
     r"loose_landmark_train\.csv, line 3: a/1 already has landmarks \(.*loose_landmark_train\.csv, line 2\)"),
])
def test_bad_landmark_files_name_file_and_line(tmp_path, text, match):
    from facemac.data.maadface import read_vggface2_landmarks

    (tmp_path / "loose_landmark_train.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        read_vggface2_landmarks([tmp_path / "loose_landmark_train.csv"])


def test_a_name_in_both_vggface2_files_is_refused(tmp_path):
    from facemac.data.maadface import read_vggface2_landmarks

    (tmp_path / "loose_landmark_train.csv").write_text(LM_HEADER + _lm_row("n1/1") + _lm_row("n1/2"))
    (tmp_path / "loose_landmark_test.csv").write_text(LM_HEADER + _lm_row("n2/1") + _lm_row("n1/2"))
    with pytest.raises(DataError, match=r"test\.csv, line 3: n1/2 already has landmarks \(.*train\.csv, line 3\)"):
        read_vggface2_landmarks([tmp_path / "loose_landmark_train.csv", tmp_path / "loose_landmark_test.csv"])
