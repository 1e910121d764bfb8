"""CelebA reader against torchvision's CelebA (the reference parser) and the truth the fixture wrote."""

from __future__ import annotations

import numpy as np
import pytest

from facemac.data.celeba import read_celeba
from facemac.errors import ConfigError, DataError
from tests.readers_fixtures import CELEBA_TEST_ATTRS, write_celeba_tree


@pytest.fixture
def tv_root(tmp_path):
    """torchvision's layout: <root>/celeba/<files>."""
    truth = write_celeba_tree(tmp_path / "celeba")
    return tmp_path, truth


@pytest.mark.parametrize("split", ["train", "valid", "test", "all"])
def test_matches_torchvision(tv_root, monkeypatch, split):
    from torchvision.datasets import CelebA

    root, _ = tv_root
    monkeypatch.setattr(CelebA, "_check_integrity", lambda self: True)
    ref = CelebA(str(root), split=split, target_type=["attr", "identity", "landmarks"], download=False)
    table = read_celeba(root)
    if split != "all":
        table = table.split({"valid": "val"}.get(split, split))
    assert len(ref.filename) > 0
    assert table.keys == list(ref.filename)
    assert table.attributes == list(ref.attr_names)[: len(table.attributes)] == CELEBA_TEST_ATTRS
    np.testing.assert_array_equal(table.labels, ref.attr.numpy())
    assert table.identities == [str(int(v)) for v in ref.identity.squeeze(1)]
    np.testing.assert_array_equal(table.landmarks.reshape(len(table), 10), ref.landmarks_align.numpy())
    x, target = ref[0]  # the image torchvision opens is the one our source reads
    assert x.size == (16, 20)
    assert table.source.read(table.keys[0]) == (root / "celeba/img_align_celeba" / table.keys[0]).read_bytes()


def test_truth_subset_and_layouts(tmp_path):
    truth = write_celeba_tree(tmp_path, landmarks=False)
    t = read_celeba(tmp_path, attributes=["Smiling", "Male"], geometry="arcface_112")
    assert t.attributes == ["Smiling", "Male"] and t.geometry == "arcface_112"
    idx = [truth["attrs"].index("Smiling"), truth["attrs"].index("Male")]
    np.testing.assert_array_equal(t.labels, (truth["values"][:, idx] + 1) // 2)
    assert t.labels.dtype == np.float32 and t.mask.all() and t.landmarks is None
    np.testing.assert_array_equal(t.splits, truth["splits"])
    assert read_celeba(tmp_path).geometry == "loose"
    with pytest.raises(ConfigError, match=r"Bald.*valid names: 5_o_Clock_Shadow, Eyeglasses"):
        read_celeba(tmp_path, attributes=["Smiling", "Bald"])


def test_rows_joined_by_name_and_landmarks(tmp_path):
    truth = write_celeba_tree(tmp_path)
    part = (tmp_path / "list_eval_partition.txt").read_text().splitlines()
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(reversed(part)) + "\n")
    t = read_celeba(tmp_path)
    np.testing.assert_array_equal(t.splits, truth["splits"])
    np.testing.assert_array_equal(t.landmarks, truth["landmarks"].astype(np.float32))
    assert t.landmarks.dtype == np.float32 and t.landmarks.shape == (9, 5, 2)
    assert t.identities == [str(v) for v in truth["ids"]]


def test_bad_files_name_file_and_line(tmp_path):
    write_celeba_tree(tmp_path)
    attr = tmp_path / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join(lines[:4] + [lines[4] + " 1"] + lines[5:]) + "\n")
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt.*wrong number of columns"):
        read_celeba(tmp_path)
    attr.write_text("\n".join(lines[:4] + [lines[4].rsplit(" ", 1)[0]] + lines[5:]) + "\n")
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt, line 5: fewer than 5 values"):
        read_celeba(tmp_path)
    attr.write_text("\n".join(lines[:3] + [lines[3].replace("-1", "0", 1).replace("  1", " 0", 1)] + lines[4:]))
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt, line 4, attribute .*is not -1 or 1"):
        read_celeba(tmp_path)
    attr.unlink()
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt does not exist"):
        read_celeba(tmp_path)
    with pytest.raises(DataError, match=r"nowhere does not exist"):
        read_celeba(tmp_path / "nowhere")
