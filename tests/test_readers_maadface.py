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
