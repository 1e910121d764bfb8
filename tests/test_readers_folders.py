"""Identity-folder reader: depth detection, identities, deterministic keys, top-level files ignored, clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from facemac.data.decode import decode_image
from facemac.data.folders import read_identity_folders
from facemac.errors import DataError
from tests.readers_fixtures import write_image


def test_depth_one_identities_keys_and_top_level_files(tmp_path):
    for i, rel in enumerate(["b_id/2.jpg", "b_id/1.PNG", "a_id/x.jpeg", "a_id/notes.txt", "c_id/.hidden.jpg"]):
        write_image(tmp_path / rel, i)
    (tmp_path / "labels.csv").write_text("path,identity\n")
    write_image(tmp_path / "top.jpg")  # a file at the top level belongs to no identity
    t = read_identity_folders(tmp_path)
    assert t.keys == ["a_id/x.jpeg", "b_id/1.PNG", "b_id/2.jpg"]
    assert t.identities == ["a_id", "b_id", "b_id"]
    assert t.geometry == "arcface_112" and t.labels is None
    img = decode_image(t.source.read(t.keys[0]), t.keys[0])
    assert img.shape == (16, 16, 3)
    clone = pickle.loads(pickle.dumps(t.source))  # DataLoader workers get a copy
    assert clone.read("b_id/2.jpg") == (tmp_path / "b_id/2.jpg").read_bytes()


def test_depth_two_keeps_group_prefix(tmp_path):
    for i, rel in enumerate(["African/m.0b/1.jpg", "African/m.0a/1.jpg", "Asian/m.0a/1.jpg", "Asian/m.0a/2.jpg"]):
        write_image(tmp_path / rel, i)
    t = read_identity_folders(tmp_path)
    assert t.keys == ["African/m.0a/1.jpg", "African/m.0b/1.jpg", "Asian/m.0a/1.jpg", "Asian/m.0a/2.jpg"]
    # the same folder name under two groups stays two identities
    assert t.identities == ["African/m.0a", "African/m.0b", "Asian/m.0a", "Asian/m.0a"]
    assert len(set(t.identities)) == 3


def test_forced_depth_and_extensions(tmp_path):
    write_image(tmp_path / "g/id1/1.jpg")
    write_image(tmp_path / "g/id1/2.png")
    assert read_identity_folders(tmp_path, depth=2, extensions=("png",)).keys == ["g/id1/2.png"]
    with pytest.raises(DataError, match="no images"):
        read_identity_folders(tmp_path, depth=1)  # g/ holds folders, not images


def test_order_is_independent_of_creation_order(tmp_path):
    names = [f"id{i % 3}/{i:03d}.jpg" for i in range(12)]
    for i, n in enumerate(reversed(names)):
        write_image(tmp_path / "one" / n, i)
    for i, n in enumerate(names):
        write_image(tmp_path / "two" / n, i)
    a, b = read_identity_folders(tmp_path / "one"), read_identity_folders(tmp_path / "two")
    assert a.keys == b.keys == sorted(names)


def test_missing_or_empty_root_names_it(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        read_identity_folders(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*expected identity folders"):
        read_identity_folders(tmp_path / "empty")


def test_labels_joined_by_path(tmp_path):
    write_image(tmp_path / "p1/a.jpg")
    write_image(tmp_path / "p1/b.jpg")
    write_image(tmp_path / "p2/c.jpg")
    (tmp_path / "labels.csv").write_text("path,identity,Smiling,Male\np2/c.jpg,p2,1,0\np1/a.jpg,p1,0,1\n")
    t = read_identity_folders(tmp_path, labels=tmp_path / "labels.csv")
    assert t.attributes == ["Smiling", "Male"]
    np.testing.assert_array_equal(t.labels, [[0, 1], [0, 0], [1, 0]])
    np.testing.assert_array_equal(t.mask, [[True, True], [False, False], [True, True]])  # p1/b.jpg has no row
