"""facemac.faces: the crop a person is shown is the crop annotation fed the model (aligned crops, loose photos with a
landmarks file, geometry: detect with the stored points), redrawn from the table and the manifest alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import facemac.annotation.feed as feed
from facemac.annotation.run import annotate
from facemac.data.demo.loose import write_loose_target
from facemac.errors import DataError
from facemac.faces import CropReader, load_crops
from tests.annotate_helpers import make_checkpoint


def _fed(monkeypatch) -> dict[int, np.ndarray]:
    """Record every image annotation hands the model, by table row (all CPU engines go through feed._infer)."""
    seen: dict[int, np.ndarray] = {}
    inner = feed._infer

    def spy(annotator, batch):
        for i, img in zip(batch["index"].tolist(), batch["image"]):
            seen[i] = img.permute(1, 2, 0).numpy().copy()
        return inner(annotator, batch)

    monkeypatch.setattr(feed, "_infer", spy)
    return seen


def _annotate(make_cfg, monkeypatch, ck: Path, root: Path, run: Path, *extra: str):
    seen = _fed(monkeypatch)
    annotate(make_cfg("annotate", ["logger=none", f"ckpt={ck}", "+targets/dataset@targets.photos=dcface",
                                   "targets=dcface", "annotate.only=[photos]", f"targets.photos.root={root}",
                                   "targets.photos.depth=1", "annotate.batch_size=8", "annotate.amp=off",
                                   "annotate.replicas=1", "annotate.num_workers=0", *extra], output_dir=run))
    ann = run / "annotations" / "photos"
    rows = pd.concat([pd.read_parquet(p) for p in sorted(ann.glob("part-*.parquet"))], ignore_index=True)
    from facemac.data.registry import build_table

    keys = build_table(json.loads((ann / "manifest.json").read_text())["reader"]).keys
    return ann, list(rows["path"]), {keys[i]: img for i, img in seen.items()}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "best.pt", size=48)


@pytest.fixture(scope="module")
def loose(tmp_path_factory):
    return write_loose_target(tmp_path_factory.mktemp("loose") / "assorted", identities=3, images=3,
                              layout="assorted", progress=False)


def _same(got: list, fed: dict, paths: list[str]) -> None:
    assert all(g is not None for g in got)
    for p, g in zip(paths, got):
        assert g.dtype == np.uint8 and g.shape == fed[p].shape
        assert np.abs(g.astype(int) - fed[p].astype(int)).max() <= 1, p


def test_aligned_demo_crops_are_what_the_model_saw(make_cfg, monkeypatch, tmp_path, ckpt):
    from facemac.data.demo import ensure_demo

    src = Path(ensure_demo(tmp_path / "cache", target_identities=3, target_images_per_identity=3,
                           celeba_identities=10, celeba_images_per_identity=2, progress=False).targets["demo_synth_a"])
    ann, paths, fed = _annotate(make_cfg, monkeypatch, ckpt, src, tmp_path / "run")
    manifest = json.loads((ann / "manifest.json").read_text())
    assert manifest["preprocess"] == {"align": "arcface", "input_size": [3, 48, 48], "reduced_decode": False}
    assert manifest["reader"]["root"] == str(src) and manifest["reader"]["format"] == "folders"
    _same(load_crops(ann, paths, size=None), fed, paths)
    big = load_crops(ann, paths[:2] + ["nope/missing.jpg"], size=160)
    assert big[0].shape == (160, 160, 3) and big[2] is None
    # an older manifest without the preprocess record: the checkpoint's data_cfg says the same
    del manifest["preprocess"], manifest["reader"]
    (ann / "manifest.json").write_text(json.dumps(manifest))
    _same(load_crops(ann, paths, size=None), fed, paths)
    manifest["checkpoint"] = str(tmp_path / "gone.pt")
    (ann / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="does not record the model's crop"):
        load_crops(ann, paths)


def test_loose_photos_with_landmarks_are_warped_as_annotated(make_cfg, monkeypatch, tmp_path, ckpt, loose):
    ann, paths, fed = _annotate(make_cfg, monkeypatch, ckpt, loose.root, tmp_path / "run",
                                f"+targets.photos.landmarks={loose.landmarks}")
    assert json.loads((ann / "manifest.json").read_text())["geometry"] == "loose"
    _same(load_crops(ann, paths, size=None), fed, paths)
    # the images moved: root= points at the copy; a vanished file is None, not an error
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(loose.root, moved)
    (moved / paths[0]).unlink()
    got = load_crops(ann, paths, size=None, root=moved)
    assert got[0] is None
    _same(got[1:], fed, paths[1:])


def test_detect_crops_use_the_stored_points_never_a_new_detection(make_cfg, monkeypatch, tmp_path, ckpt, loose):
    pytest.importorskip("facenet_pytorch")
    ann, paths, fed = _annotate(make_cfg, monkeypatch, ckpt, loose.root, tmp_path / "run",
                                "targets.photos.geometry=detect")
    import facemac.data.detect as detect

    monkeypatch.setattr(detect.FaceDetector, "detect", lambda *a, **k: pytest.fail("detected again"))
    reader = CropReader(ann)
    assert reader.detected and reader.input_size == 48
    _same(reader.crops(paths, size=None), fed, paths)
