"""build_table: dispatch on dataset.format, config errors naming the key and layout, the demo hook."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from facemac.data.registry import FORMATS, build_table
from facemac.errors import ConfigError, DataError
from tests.readers_fixtures import write_image


def _folders_tree(root: Path) -> Path:
    for i, rel in enumerate(["id_a/0.jpg", "id_a/1.jpg", "id_b/0.jpg"]):
        write_image(root / rel, i)
    (root / "labels.csv").write_text("path,identity,Smiling,Male\n"
                                     "id_a/0.jpg,id_a,1,0\nid_a/1.jpg,id_a,0,0\nid_b/0.jpg,id_b,1,1\n")
    return root


def test_unknown_format_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"dataset\.format='imagenet' is unknown; choose one of celeba, maadface"):
        build_table({"format": "imagenet", "root": "/x"})
    assert set(FORMATS) == {"celeba", "maadface", "folders", "filelist", "recordio", "labels_csv"}


def test_unset_root_names_key_and_layout():
    cfg = OmegaConf.create({"name": "celeba", "format": "celeba", "root": "???"})
    with pytest.raises(ConfigError, match=r"dataset\.root is not set.*list_attr_celeba\.txt"):
        build_table(cfg)
    with pytest.raises(ConfigError, match=r"targets\.bupt\.root is not set.*<root>/<identity>/\*\.jpg"):
        build_table({"format": "folders"}, prefix="targets.bupt")


def test_missing_root_names_key_and_layout(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(ConfigError, match=rf"dataset\.root={missing} does not exist; expected identity folders"):
        build_table({"format": "folders", "root": str(missing)})


def test_missing_label_file_names_file(tmp_path):
    root = _folders_tree(tmp_path / "ds")
    with pytest.raises(DataError, match=r"gt\.csv does not exist"):
        build_table({"format": "folders", "root": str(root), "labels": "gt.csv"})


def test_label_file_with_wrong_column_count_names_file_and_line(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,identity,Smiling\na.jpg,i,1\nb.jpg,i,1,0\n")
    with pytest.raises(DataError, match=r"labels\.csv, line 3: 4 fields, but the header has 3"):
        build_table({"format": "labels_csv", "root": str(csv)})


def test_folders_with_labels_and_labels_csv_agree(tmp_path):
    root = _folders_tree(tmp_path / "ds")
    a = build_table(OmegaConf.create({"name": "mine", "format": "folders", "root": str(root), "labels": "labels.csv",
                                      "depth": None, "geometry": "arcface_112"}))
    b = build_table({"format": "labels_csv", "file": str(root / "labels.csv")})
    assert a.name == "mine" and a.keys == b.keys and a.identities == b.identities
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.labels, [[1, 0], [0, 0], [1, 1]])
    assert a.geometry == "arcface_112" and b.geometry == "unknown"


def test_demo_flag_only_builds_the_celeba_layout_training_set(tmp_path, monkeypatch):
    fake = types.SimpleNamespace(ensure_demo=lambda cache_dir, **kw: pytest.fail("nothing may be generated"))
    monkeypatch.setitem(sys.modules, "facemac.data.demo", fake)
    cfg = OmegaConf.create({"name": "x", "format": "folders", "root": None, "demo": True})
    with pytest.raises(ConfigError, match=r"dataset\.demo=true .*dataset\.format=celeba"):
        build_table(cfg, cache_dir=tmp_path / "cache")


def test_celeba_config_and_demo_celeba(tmp_path, monkeypatch):
    from tests.readers_fixtures import write_celeba_tree

    write_celeba_tree(tmp_path / "data/celeba")
    cfg = OmegaConf.create({"name": "celeba", "format": "celeba", "root": str(tmp_path / "data"),
                            "attributes": ["Male"], "geometry": "loose", "align": "arcface"})
    t = build_table(cfg)
    assert t.attributes == ["Male"] and len(t) == 9 and t.landmarks is not None and t.geometry == "loose"

    fake = types.SimpleNamespace(ensure_demo=lambda cache_dir, seed=0, **kw: types.SimpleNamespace(
        celeba_root=tmp_path / "data/celeba", targets={}))
    monkeypatch.setitem(sys.modules, "facemac.data.demo", fake)
    demo = build_table({"name": "demo", "format": "celeba", "root": None, "demo": True, "attributes": None,
                        "geometry": "arcface_112"}, cache_dir=tmp_path)
    assert demo.name == "demo" and demo.geometry == "arcface_112" and len(demo.attributes) == 5
    with pytest.raises(ConfigError, match=r"dataset\.root is not set"):  # demo: false does not generate anything
        build_table({"format": "celeba", "root": None, "demo": False})


def test_maadface_config_composes_and_reads(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "MAAD_Face.csv").write_text("Filename,Identity,Male,Young\nn1/1.jpg,1,1,0\nn2/1.jpg,2,-1,1\n")
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR + "/dataset", version_base="1.3"):
        cfg = compose(config_name="maadface", overrides=[f"root={tmp_path}"])
    assert cfg.align == "arcface" and cfg.landmarks == "auto"  # VGGFace2's landmarks, found under the root
    with pytest.raises(ConfigError, match="dataset.landmarks=auto: no bb_landmark/"):
        build_table(cfg)
    (tmp_path / "bb_landmark").mkdir()
    for split, name in (("train", "n1/1"), ("test", "n2/1")):
        (tmp_path / "bb_landmark" / f"loose_landmark_{split}.csv").write_text(
            f'NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y\n"{name}",30,40,60,40,45,55,33,70,57,70\n')
    t = build_table(cfg)
    assert t.name == "maadface" and t.attributes == ["Male", "Young"] and t.source.root == tmp_path / "images"
    np.testing.assert_array_equal(t.mask, [[True, False], [True, True]])
    assert t.landmarks.shape == (2, 5, 2) and t.landmarks[1, 0, 0] == 30
    for name in ("celeba", "demo"):
        with initialize_config_dir(config_dir=CONF_DIR + "/dataset", version_base="1.3"):
            c = compose(config_name=name)
        assert c.format == "celeba" and c.align == "arcface"


def test_labels_csv_config(tmp_path):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    csv = tmp_path / "labels.csv"
    csv.write_text("path,identity,split,Smiling\na.jpg,1,train,1\nb.jpg,2,test,-1\n")
    with initialize_config_dir(config_dir=CONF_DIR + "/dataset", version_base="1.3"):
        cfg = compose(config_name="labels_csv", overrides=[f"file={csv}"])
    t = build_table(cfg)
    assert t.keys == ["a.jpg", "b.jpg"] and t.geometry == "arcface_112" and t.source.root == tmp_path
    np.testing.assert_array_equal(t.splits, [0, 2])
    np.testing.assert_array_equal(t.mask, [[True], [False]])
    with initialize_config_dir(config_dir=CONF_DIR + "/dataset", version_base="1.3"):
        unset = compose(config_name="labels_csv")
    with pytest.raises(ConfigError, match=r"dataset\.file is not set; set dataset\.file=<path> to a CSV 'path, "):
        build_table(unset)
