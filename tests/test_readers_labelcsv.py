"""Label CSVs: 0/1 labels, empty or -1 cells masked, splits, subsets, and errors naming file and line."""

from __future__ import annotations

import numpy as np
import pytest

from facemac.data.labelcsv import read_label_csv
from facemac.errors import ConfigError, DataError
from tests.readers_fixtures import write_image


def test_labels_mask_identities_and_root(tmp_path):
    write_image(tmp_path / "id1/0.jpg")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,identity,Smiling,Male,Young\n"
                   "id1/0.jpg,id1,1,0,\n"
                   "id2/0.jpg,id2,-1,1,0\n"
                   "id2/1.jpg, id2 , 1.0 , 0 ,1\n")
    t = read_label_csv(csv)
    assert t.keys == ["id1/0.jpg", "id2/0.jpg", "id2/1.jpg"]
    assert t.identities == ["id1", "id2", "id2"]
    assert t.attributes == ["Smiling", "Male", "Young"]
    assert t.labels.dtype == np.float32 and t.mask.dtype == bool
    np.testing.assert_array_equal(t.labels, [[1, 0, 0], [0, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(t.mask, [[True, True, False], [False, True, True], [True, True, True]])
    assert t.splits is None
    assert t.source.read("id1/0.jpg") == (tmp_path / "id1/0.jpg").read_bytes()  # root = the CSV's folder
    other = read_label_csv(csv, root=tmp_path / "elsewhere", attributes=["Young", "Smiling"])
    assert other.source.root == tmp_path / "elsewhere"
    assert other.attributes == ["Young", "Smiling"]
    np.testing.assert_array_equal(other.labels, t.labels[:, [2, 0]])


def test_split_column_and_no_identity(tmp_path):
    csv = tmp_path / "l.csv"
    csv.write_text("path,split,A\na.jpg,train,1\nb.jpg,val,0\nc.jpg,test,1\nd.jpg,2,0\n")
    t = read_label_csv(csv)
    assert t.identities is None and t.attributes == ["A"]
    np.testing.assert_array_equal(t.splits, [0, 1, 2, 2])
    assert t.split("test").keys == ["c.jpg", "d.jpg"]


def test_wrong_column_count_names_file_and_line(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,identity,A,B\na.jpg,i,1,0\nb.jpg,i,1\n")
    with pytest.raises(DataError, match=r"labels\.csv, line 3: 3 fields, but the header has 4"):
        read_label_csv(csv)
    csv.write_text("path,identity,A,B\na.jpg,i,1,0,1\n")
    with pytest.raises(DataError, match=r"line 2: 5 fields"):
        read_label_csv(csv)


def test_bad_value_missing_file_unknown_attribute(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,A,B\na.jpg,1,0\nb.jpg,1,yes\n")
    with pytest.raises(DataError, match=r"line 3, column 'B': 'yes' is not a number"):
        read_label_csv(csv)
    csv.write_text("path,A,B\na.jpg,1,0\nb.jpg,0.5,1\n")
    with pytest.raises(DataError, match=r"line 3, column 'A': value 0.5 is not a label"):
        read_label_csv(csv)
    with pytest.raises(DataError, match=r"missing\.csv does not exist"):
        read_label_csv(tmp_path / "missing.csv")
    csv.write_text("file,A\na.jpg,1\n")
    with pytest.raises(DataError, match="no 'path' column"):
        read_label_csv(csv)
    csv.write_text("path,A\na.jpg,1\n")
    with pytest.raises(ConfigError, match=r"Nope.*valid names: A"):
        read_label_csv(csv, attributes=["Nope"])


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 22])
def test_field_count_check_across_chunk_boundaries(tmp_path, chunk):
    from facemac.data.labelcsv import check_field_counts

    rng = np.random.default_rng(chunk)
    for trial in range(20):
        n_rows, bad_row = int(rng.integers(2, 30)), None
        lines = ["path,a,b"]
        for r in range(n_rows):
            fields = 3
            if bad_row is None and rng.random() < 0.05:
                fields, bad_row = int(rng.choice([2, 4])), len(lines) + 1
            lines.append(",".join(["x" * int(rng.integers(1, 5))] * fields))
            if rng.random() < 0.1:
                lines.append("   ")  # blank lines are skipped but counted
        f = tmp_path / f"t{trial}.csv"
        f.write_text("\r\n".join(lines) + ("\n" if rng.random() < 0.5 else ""))
        if bad_row is None:
            check_field_counts(f, chunk_bytes=chunk)
        else:
            with pytest.raises(DataError, match=rf"line {bad_row}: \d fields, but the header has 3"):
                check_field_counts(f, chunk_bytes=chunk)
