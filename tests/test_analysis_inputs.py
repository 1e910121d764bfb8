"""Input resolution: manifest verification (refusals), label-file readers, detection by content, config checks."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.annotation_fixtures import write_annotation_dir
from facemac.analysis.inputs import expand_path, sniff_label_file
from facemac.analysis.run import choose_attributes, choose_joint, count_dataset
from facemac.annotation_table import verify_table
from facemac.errors import ConfigError, DataError
from facemac.settings.analyze import AnalyzeSettings

ATTRS = ["Male", "Young", "Smiling"]


def _ann(tmp_path, name="ds", parts=2):
    rng = np.random.default_rng(0)
    return write_annotation_dir(tmp_path / name, name, "real", ATTRS,
                                [(rng.random((10, 3)), [f"i{k}"] * 10) for k in range(parts)])


def test_verified_dir_loads(tmp_path):
    manifest, files = verify_table(_ann(tmp_path))
    assert manifest["dataset"] == "ds" and [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet"]


def test_missing_manifest_is_refused(tmp_path):
    d = _ann(tmp_path)
    (d / "manifest.json").unlink()
    with pytest.raises(DataError, match=str(d)):
        expand_path(d)  # the dir no longer looks like an annotation table, nor a label folder
    with pytest.raises(DataError, match="no manifest.json"):
        verify_table(d)


def test_incomplete_manifest_is_refused(tmp_path):
    d = _ann(tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["complete"] = False
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=f"{d}.*not complete"):
        expand_path(d)


def test_row_count_mismatch_is_refused(tmp_path):
    d = _ann(tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["parts"][1]["rows"] = 11
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=f"{d}.*part-00001.parquet has 10 rows, manifest says 11"):
        expand_path(d)


def test_tampered_part_content_is_refused(tmp_path):
    d = _ann(tmp_path)
    table = pq.read_table(d / "part-00000.parquet")
    probs = table.column("Male").to_numpy().copy()
    probs[0] = 1.0 - probs[0]
    pq.write_table(table.set_column(table.schema.get_field_index("Male"), "Male", pa.array(probs, pa.float32())),
                   d / "part-00000.parquet")  # same row count, different bytes
    with pytest.raises(DataError, match=f"{d}.*part-00000.parquet SHA-256"):
        expand_path(d)


def test_missing_and_unlisted_parts_are_refused(tmp_path):
    d = _ann(tmp_path)
    (d / "part-00001.parquet").rename(d / "part-00009.parquet")
    with pytest.raises(DataError, match="part-00001.parquet listed in manifest.json is missing"):
        expand_path(d)
    d2 = _ann(tmp_path, "other")
    pq.write_table(pq.read_table(d2 / "part-00000.parquet"), d2 / "part-00002.parquet")
    with pytest.raises(DataError, match="not listed in manifest.json"):
        expand_path(d2)


def test_folder_of_annotation_dirs_expands(tmp_path):
    _ann(tmp_path / "ann", "a")
    _ann(tmp_path / "ann", "b")
    assert [d.name for d in expand_path(tmp_path / "ann")] == ["a", "b"]


def _stream(d, attrs, mode="hard", rel=None):
    s = AnalyzeSettings(mode=mode, n_boot=0, min_reliability=rel, rows_per_batch=2)
    return count_dataset(d, attrs, attrs[:2], s)


def test_celeba_attribute_file(tmp_path):
    f = tmp_path / "celeba" / "list_attr_celeba.txt"
    f.parent.mkdir()
    f.write_text("3\nMale Young  Smiling\n000001.jpg  1 -1 -1\n000002.jpg -1  1  1\n000003.jpg  1  1 -1\n")
    (f.parent / "identity_CelebA.txt").write_text("000001.jpg 7\n000002.jpg 7\n000003.jpg 9\n")
    assert sniff_label_file(f) == "celeba"
    [d] = expand_path(f.parent)  # a folder holding the file works too
    assert (d.kind, d.name, d.group, d.attributes) == ("celeba", "celeba(labels)", "real", ATTRS)
    c = _stream(d, ["Smiling", "Male", "Young"])
    assert c.n.tolist() == [3, 3, 3] and c.positives.tolist() == [1, 2, 2]


def test_maadface_csv_masks_undefined(tmp_path):
    f = tmp_path / "MAAD_Face.csv"
    f.write_text("Filename,Identity,Male,Young,Smiling\nn1/1.jpg,n1,1,0,-1\nn1/2.jpg,n1,1,-1,0\n"
                 "n2/1.jpg,n2,-1,1,1\n")
    [d] = expand_path(f)
    assert d.kind == "maadface"
    c = _stream(d, ATTRS)
    assert c.n.tolist() == [3, 2, 2]  # 0 = undefined: excluded from n, never a negative
    assert c.positives.tolist() == [2, 1, 1]
    bad = tmp_path / "bad" / "MAAD_Face.csv"
    bad.parent.mkdir()
    bad.write_text("Filename,Identity,Male\nx.jpg,n1,2\n")
    with pytest.raises(DataError, match="bad/MAAD_Face.csv, line 2, column 'Male': 2 is not 1, -1 or 0"):
        _stream(expand_path(bad)[0], ["Male"])


def test_label_csv(tmp_path):
    f = tmp_path / "demo_real_a" / "labels.csv"
    f.parent.mkdir()
    f.write_text("path,identity,Male,Young,Smiling\na/1.png,a,1,0,1\na/2.png,a,1,1,\nb/1.png,b,0,1,0\n")
    [d] = expand_path(f)
    assert (d.kind, d.name, d.group) == ("labels", "demo_real_a(labels)", None)
    c = _stream(d, ATTRS)
    assert c.n.tolist() == [3, 3, 2] and c.positives.tolist() == [2, 2, 1]


def test_unknown_label_file_is_refused(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="x.csv: not a recognised label file"):
        expand_path(f)


def test_attribute_selection_errors(tmp_path):
    a = expand_path(_ann(tmp_path, "a"))[0]
    assert choose_attributes([a], None) == ATTRS
    with pytest.raises(ConfigError, match=r"attributes: \['Bald'\].*valid: \['Male', 'Young', 'Smiling'\]"):
        choose_attributes([a], ["Male", "Bald"])
    with pytest.raises(ConfigError, match="joint_attributes"):
        choose_joint(ATTRS, ["Bald"])
    with pytest.raises(ConfigError, match="64"):
        choose_joint([f"a{i}" for i in range(65)], None)


def test_reliability_filter_drops_and_counts(tmp_path):
    probs = np.array([[0.9, 0.9, 0.9], [0.9, 0.1, 0.9], [0.1, 0.1, 0.9]])
    rel = np.array([[0.9, 0.2, 0.9], [0.1, 0.9, 0.9], [0.9, 0.9, 0.9]])
    d = expand_path(write_annotation_dir(tmp_path / "r", "r", "real", ATTRS, [(probs, None)], reliability=[rel]))[0]
    c = _stream(d, ATTRS, rel=0.5)
    assert c.dropped.tolist() == [1, 1, 0] and c.n.tolist() == [2, 2, 3] and c.positives.tolist() == [1, 0, 3]
    assert _stream(d, ATTRS).n.tolist() == [3, 3, 3]
