"""File lists: whitespace lines with optional identity, CSV with a path column, root defaults, clear errors."""

from __future__ import annotations

import pytest

from facemac.data.filelist import read_file_list
from facemac.data.registry import build_table
from facemac.errors import ConfigError, DataError
from tests.readers_fixtures import write_image


def test_plain_list_with_identities_keeps_order(tmp_path):
    write_image(tmp_path / "imgs/b/1.jpg")
    lst = tmp_path / "list.txt"
    lst.write_text("# synthetic set\nimgs/b/1.jpg   7\n\nimgs/a/2.jpg\t3\nimgs\\a\\1.jpg 3\n")
    t = read_file_list(lst)
    assert t.keys == ["imgs/b/1.jpg", "imgs/a/2.jpg", "imgs/a/1.jpg"]
    assert t.identities == ["7", "3", "3"] and t.labels is None and t.geometry == "arcface_112"
    assert t.source.read("imgs/b/1.jpg") == (tmp_path / "imgs/b/1.jpg").read_bytes()
    t2 = read_file_list(lst, root=tmp_path / "imgs")
    assert t2.source.root == tmp_path / "imgs"


def test_plain_list_without_identities(tmp_path):
    lst = tmp_path / "l.lst"
    lst.write_text("a.jpg\nb.png\n")
    t = read_file_list(lst)
    assert t.keys == ["a.jpg", "b.png"] and t.identities is None


def test_csv_list(tmp_path):
    lst = tmp_path / "files.csv"
    lst.write_text("identity,path,score\nid1,x/1.jpg,0.3\nid2,x/2.jpg,0.9\n")
    t = read_file_list(lst)
    assert t.keys == ["x/1.jpg", "x/2.jpg"] and t.identities == ["id1", "id2"]
    lst.write_text("path\nx/1.jpg\n")
    assert read_file_list(lst).identities is None


def test_errors_name_file_and_line(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("a.jpg 1\nb.jpg 1 extra\n")
    with pytest.raises(DataError, match=r"list\.txt, line 2: 3 fields"):
        read_file_list(lst)
    lst.write_text("a.jpg 1\nb.jpg\n")
    with pytest.raises(DataError, match=r"list\.txt, line 2: no identity here"):
        read_file_list(lst)
    lst.write_text("# only a comment\n")
    with pytest.raises(DataError, match="lists no images"):
        read_file_list(lst)
    with pytest.raises(DataError, match=r"gone\.txt does not exist"):
        read_file_list(tmp_path / "gone.txt")


def test_registry_file_and_root_keys(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("a.jpg 1\n")
    (tmp_path / "imgs").mkdir()
    assert build_table({"format": "filelist", "root": str(lst)}).keys == ["a.jpg"]
    t = build_table({"format": "filelist", "file": str(lst), "root": str(tmp_path / "imgs")})
    assert t.source.root == tmp_path / "imgs"
    with pytest.raises(ConfigError, match=r"dataset\.file=.*nope\.txt does not exist"):
        build_table({"format": "filelist", "file": str(tmp_path / "nope.txt")})
    with pytest.raises(ConfigError, match=r"dataset\.file is not set and dataset\.root=.* is a folder"):
        build_table({"format": "filelist", "root": str(tmp_path)})
