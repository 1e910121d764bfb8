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


def test_a_flat_folder_is_read_without_identities_and_a_forced_depth_says_how(tmp_path, caplog):
    """#22 item 8: a flat folder of images got "expected identity folders"; it is now depth 0 (no identity), and an
    explicit depth that finds nothing names depth: 0 and format: filelist."""
    from facemac.data.registry import build_table

    names = [f"{i:05d}.png" for i in range(5)]
    for i, n in enumerate(reversed(names)):
        write_image(tmp_path / "flat" / n, i)
    (tmp_path / "flat" / "README.txt").write_text("a GAN set")
    caplog.set_level("INFO")
    t = build_table({"format": "folders", "root": str(tmp_path / "flat")}, prefix="targets.syn_gan")
    assert t.keys == names and t.identities is None
    assert "a flat folder of 5 images (depth 0): no identities" in caplog.text
    assert read_identity_folders(tmp_path / "flat", depth=0).keys == names
    with pytest.raises(DataError, match=r"holds no images at depth 1 but 5 directly under it: for a flat folder set "
                                        r"depth: 0 .* or list them with format: filelist"):
        read_identity_folders(tmp_path / "flat", depth=1)


def test_images_beside_identity_folders_are_named_as_left_out(tmp_path, caplog):
    write_image(tmp_path / "id1/1.jpg")
    write_image(tmp_path / "stray.jpg")
    with caplog.at_level("WARNING"):
        assert read_identity_folders(tmp_path).keys == ["id1/1.jpg"]
    assert "1 image(s) directly under the root (e.g. stray.jpg) belong to no identity folder" in caplog.text
