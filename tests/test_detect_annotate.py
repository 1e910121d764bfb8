"""Issue #21 end to end: loose photos declared aligned are refused from their pixels; geometry: detect and
landmarks: files annotate them; the detection is stored with each row, resumes and failures work as elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from facemac.annotation.run import annotate
from facemac.analysis.readers import iter_parquet_batches
from facemac.annotation_table import DETECT_COLUMNS, verify_table
from facemac.data.demo.loose import write_loose_target
from facemac.data.pixel_check import GeometryMismatchError
from facemac.errors import ConfigError, DataError
from tests.annotate_helpers import make_checkpoint

pytest.importorskip("facenet_pytorch")


def _cfg(make_cfg, ck: Path, root: Path, run: Path, *extra: str):
    return make_cfg("annotate", ["logger=none", f"ckpt={ck}", "+targets/dataset@targets.photos=dcface",
                                 "targets=dcface", "annotate.only=[photos]", f"targets.photos.root={root}",
                                 "targets.photos.depth=1", "annotate.shard_size=8", "annotate.batch_size=4",
                                 "annotate.precision=fp32", *extra], output_dir=run)


def _rows(ann: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(ann.glob("part-*.parquet"))], ignore_index=True)


@pytest.fixture(scope="module")
def loose(tmp_path_factory):
    """Three small loose demo targets: CelebA-like 178x218, assorted non-square sizes, 256 px squares."""
    base = tmp_path_factory.mktemp("loose")
    return {layout: write_loose_target(base / layout, identities=4, images=4, layout=layout, progress=False)
            for layout in ("celeba", "assorted", "square")}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "best.pt")


def test_celeba_like_loose_crops_declared_aligned_are_refused_in_one_line(make_cfg, tmp_path, loose, ckpt):
    """Trial 1 of the issue: today's folder default (arcface_112) over 178x218 loose crops ran with exit 0."""
    with pytest.raises(GeometryMismatchError) as e:
        annotate(_cfg(make_cfg, ckpt, loose["celeba"].root, tmp_path / "run"))
    msg = str(e.value)
    assert "\n" not in msg and "'photos'" in msg and "178x218" in msg and "16 of 16" in msg
    assert "targets.photos.geometry=detect" in msg and "targets.photos.landmarks=" in msg
    assert not (tmp_path / "run" / "annotations").exists()  # refused before any work


def test_vggface2_like_assorted_sizes_are_refused(make_cfg, tmp_path, loose, ckpt):
    """Trial 2: loose crops of assorted non-square sizes with the face anywhere."""
    with pytest.raises(GeometryMismatchError, match=r"different sizes no aligned crop has"):
        annotate(_cfg(make_cfg, ckpt, loose["assorted"].root, tmp_path / "run"))


def test_square_loose_photos_are_refused_by_the_detector(make_cfg, tmp_path, loose, ckpt):
    """256 px squares pass the header step (an aligned crop could be 256 px); the detected landmarks give them away."""
    with pytest.raises(GeometryMismatchError, match=r"eye distances off the ArcFace template") as e:
        annotate(_cfg(make_cfg, ckpt, loose["square"].root, tmp_path / "run"))
    assert "targets.photos.geometry=detect" in str(e.value)


def test_the_pixel_check_can_be_turned_off(make_cfg, tmp_path, loose, ckpt):
    annotate(_cfg(make_cfg, ckpt, loose["celeba"].root, tmp_path / "run", "annotate.pixel_check.enabled=false"))
    assert len(_rows(tmp_path / "run" / "annotations" / "photos")) == 16


def test_aligned_demo_crops_at_other_sizes_pass(make_cfg, tmp_path, ckpt):
    """Aligned crops stored at 128, 256 and SphereFace's 112x96 still pass: their landmarks sit where that geometry
    says. The 112x96 crop is the 112 crop without 8 columns each side, and is shifted back onto the template."""
    from facemac.data.demo import ensure_demo

    targets = ensure_demo(tmp_path / "cache", target_identities=6, target_images_per_identity=4,
                          celeba_identities=20, celeba_images_per_identity=2, progress=False).targets
    src = Path(targets["demo_real_a"])
    for name, fn in (("s128", lambda im: cv2.resize(im, (128, 128), interpolation=cv2.INTER_CUBIC)),
                     ("s256", lambda im: cv2.resize(im, (256, 256), interpolation=cv2.INTER_CUBIC)),
                     ("sphere", lambda im: im[:, 8:104])):
        root = tmp_path / name
        for f in sorted(src.glob("*/*.jpg")):
            (root / f.parent.name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / f.parent.name / (f.stem + ".png")), fn(cv2.imread(str(f))))
        annotate(_cfg(make_cfg, ckpt, root, tmp_path / f"run_{name}"))
        assert len(_rows(tmp_path / f"run_{name}" / "annotations" / "photos")) == 24


def test_detect_annotates_loose_photos_and_stores_the_detection(make_cfg, tmp_path, loose, ckpt):
    root = loose["assorted"].root
    cv2.imwrite(str(root / "id00001" / "zz_blank.png"), np.full((180, 150, 3), 127, np.uint8))  # no face
    try:
        annotate(_cfg(make_cfg, ckpt, root, tmp_path / "run", "targets.photos.geometry=detect",
                      "annotate.max_failure_fraction=0.1"))
    finally:
        (root / "id00001" / "zz_blank.png").unlink()
    ann = tmp_path / "run" / "annotations" / "photos"
    rows = _rows(ann)
    assert len(rows) == 16 and list(rows.columns[-len(DETECT_COLUMNS):]) == list(DETECT_COLUMNS)
    assert all(pq.read_schema(p).field(c).type == "float" for p in ann.glob("part-*.parquet") for c in DETECT_COLUMNS)
    fails = pd.read_csv(ann / "failures.csv")
    assert fails.to_dict("records") == [{"path": "id00001/zz_blank.png", "reason": "no face detected"}]
    truth = pd.read_csv(loose["assorted"].landmarks).set_index("NAME_ID")
    t = truth.loc[[p.rsplit(".", 1)[0] for p in rows["path"]]].to_numpy(float).reshape(-1, 5, 2)
    got = rows[list(DETECT_COLUMNS[6:])].to_numpy(float).reshape(-1, 5, 2)
    iod = np.linalg.norm(t[:, 1] - t[:, 0], axis=1)
    err = np.linalg.norm(got - t, axis=2).mean(1) / iod
    assert np.median(err) < 0.15, err
    boxes = rows[list(DETECT_COLUMNS[:4])].to_numpy()
    inside = (boxes[:, 0] <= t[:, :, 0].min(1)) & (boxes[:, 2] >= t[:, :, 0].max(1))
    assert inside.mean() > 0.9 and (rows["detect:score"] >= 0.9).all() and (rows["detect:faces"] >= 1).all()
    m = json.loads((ann / "manifest.json").read_text())
    assert m["geometry"] == "detect" and m["detector"]["name"].startswith("mtcnn") and m["num_failures"] == 1
    assert m["detect_columns"] == list(DETECT_COLUMNS)
    manifest, parts = verify_table(ann)  # the analysis' reader takes the attribute columns only
    batches = list(iter_parquet_batches(parts, manifest["attributes"], 64, None))
    assert sum(len(b) for b in batches) == 16 and batches[0].values.shape[1] == 3


def test_detect_engines_agree(make_cfg, tmp_path, loose, ckpt):
    """Inference threads, DataLoader workers (in-process) and the device path run on a CPU: the same rows, the same
    detections, probabilities within the GPU warp's few grey levels."""
    root = loose["assorted"].root
    out = {}
    for name, extra in (("threads", ["annotate.replicas=2"]),
                        ("loader", ["annotate.num_workers=0", "annotate.num_threads=1"]),
                        ("device", ["annotate.gpu_decode=true", "annotate.num_workers=0"])):
        annotate(_cfg(make_cfg, ckpt, root, tmp_path / name, "targets.photos.geometry=detect", *extra))
        out[name] = _rows(tmp_path / name / "annotations" / "photos").sort_values("path", ignore_index=True)
    a = out["threads"]
    for name in ("loader", "device"):
        b = out[name]
        assert list(a["path"]) == list(b["path"])
        np.testing.assert_allclose(a[list(DETECT_COLUMNS)].to_numpy(), b[list(DETECT_COLUMNS)].to_numpy(),
                                   atol=0.05 if name == "device" else 1e-4)
        tol = 0.05 if name == "device" else 1e-5
        np.testing.assert_allclose(a[["Male", "Smiling", "Eyeglasses"]].to_numpy(),
                                   b[["Male", "Smiling", "Eyeglasses"]].to_numpy(), atol=tol)


def test_landmarks_file_aligns_a_folder_target(make_cfg, tmp_path, loose, ckpt):
    target = loose["assorted"]
    annotate(_cfg(make_cfg, ckpt, target.root, tmp_path / "run", f"+targets.photos.landmarks={target.landmarks}"))
    ann = tmp_path / "run" / "annotations" / "photos"
    m = json.loads((ann / "manifest.json").read_text())
    assert m["geometry"] == "loose" and len(_rows(ann)) == 16 and "detect:x0" not in _rows(ann).columns


def test_a_landmarks_file_for_other_images_is_refused(make_cfg, tmp_path, loose, ckpt):
    lm = pd.read_csv(loose["assorted"].landmarks)
    lm.iloc[:, 1:] = lm.iloc[:, 1:] * 0.5  # the points of a half-size copy
    bad = tmp_path / "half.csv"
    lm.to_csv(bad, index=False)
    with pytest.raises(GeometryMismatchError, match="landmarks file does not belong"):
        annotate(_cfg(make_cfg, ckpt, loose["assorted"].root, tmp_path / "run", f"+targets.photos.landmarks={bad}"))


def test_landmarks_and_detect_together_are_refused(make_cfg, tmp_path, loose, ckpt):
    target = loose["assorted"]
    with pytest.raises(ConfigError, match="keep one"):
        annotate(_cfg(make_cfg, ckpt, target.root, tmp_path / "run", f"+targets.photos.landmarks={target.landmarks}",
                      "targets.photos.geometry=detect"))


def test_resume_with_another_detector_setting_is_refused(make_cfg, tmp_path, loose, ckpt):
    root = loose["assorted"].root
    run = tmp_path / "run"
    annotate(_cfg(make_cfg, ckpt, root, run, "targets.photos.geometry=detect"))
    (run / "annotations" / "photos" / "part-00001.parquet").unlink()
    with pytest.raises(ConfigError, match="detector"):
        annotate(_cfg(make_cfg, ckpt, root, run, "targets.photos.geometry=detect", "annotate.detect.min_face=30"))


def test_unknown_pixel_check_key_fails_fast(make_cfg, tmp_path, loose, ckpt):
    with pytest.raises(ConfigError, match=r"unknown key .annotate.pixel_check.imagez. "
                                          r"\(did you mean .annotate.pixel_check.images.\?\)"):
        annotate(_cfg(make_cfg, ckpt, loose["celeba"].root, tmp_path / "run", "+annotate.pixel_check.imagez=3"))


def test_mismatch_is_one_error_line_from_the_command_line(tmp_path, loose, ckpt):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "annotate.py", "logger=none", f"ckpt={ckpt}", "targets=dcface",
                        f"targets.dcface.root={loose['celeba'].root}", f"hydra.run.dir={tmp_path / 'run'}"],
                       cwd=repo, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "178x218" in lines[0] and "geometry=detect" in lines[0], r.stderr[-2000:]
    assert DataError  # the refusal is a FacemacError (exit 2), not a traceback


def test_training_set_with_geometry_detect_is_detected_once_and_trains(make_cfg, tmp_path, loose, monkeypatch):
    """dataset=labels_csv over loose photos with geometry: detect: the detector's points become the landmarks (near
    the drawn ones), cached under paths.cache_dir/detect/, reused by the next run; a smoke training run takes them."""
    import torch

    from facemac.data import detect_table
    from facemac.training.data import load_table
    from facemac.training.run import train

    target = loose["assorted"]
    labels = pd.read_csv(target.labels)
    labels["split"] = ["train", "train", "val", "test"] * (len(labels) // 4)
    file = tmp_path / "labels.csv"
    labels.to_csv(file, index=False)
    overrides = ["logger=none", "dataset=labels_csv", f"dataset.file={file}", f"+dataset.root={target.root}",
                 "dataset.geometry=detect", "dataset.align=arcface", "model.input_size=32", "train.epochs=1",
                 "train.limit_batches=1", "data.batch_size=4", "data.num_workers=0", "train.progress=false",
                 f"paths.cache_dir={tmp_path / 'cache'}"]
    cfg = make_cfg("train", overrides)
    table = load_table(cfg)
    assert table.geometry == "loose" and len(table) == 16
    truth = pd.read_csv(target.landmarks).set_index("NAME_ID")
    t = truth.loc[[k.rsplit(".", 1)[0] for k in table.keys]].to_numpy(float).reshape(-1, 5, 2)
    err = np.linalg.norm(table.landmarks - t, axis=2).mean(1) / np.linalg.norm(t[:, 1] - t[:, 0], axis=1)
    assert np.median(err) < 0.15
    assert len(list((tmp_path / "cache" / "detect").glob("*.csv"))) == 1

    def no_second_detection(*a, **k):
        raise AssertionError("detected twice")

    monkeypatch.setattr(detect_table, "detect_landmarks_file", no_second_detection)
    train(make_cfg("train", overrides, output_dir=tmp_path / "trainrun"))
    best = torch.load(tmp_path / "trainrun" / "checkpoints" / "best.pt", weights_only=True)
    assert best["data_cfg"]["align"] == "arcface" and best["data_cfg"]["geometry"] == "loose"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh)")
def test_detect_on_cuda_matches_the_cpu_path(make_cfg, tmp_path, loose, ckpt):
    """The device path on a GPU: workers decode, MTCNN + warp + model on cuda; the same faces as on the CPU."""
    root = loose["assorted"].root
    out = {}
    for name, extra in (("cpu", ["annotate.device=cpu", "annotate.replicas=2"]),
                        ("cuda", ["annotate.device=cuda", "annotate.num_workers=2"])):
        annotate(_cfg(make_cfg, ckpt, root, tmp_path / name, "targets.photos.geometry=detect", *extra))
        out[name] = _rows(tmp_path / name / "annotations" / "photos").sort_values("path", ignore_index=True)
    assert list(out["cpu"]["path"]) == list(out["cuda"]["path"])
    np.testing.assert_allclose(out["cpu"][list(DETECT_COLUMNS[6:])].to_numpy(),
                               out["cuda"][list(DETECT_COLUMNS[6:])].to_numpy(), atol=1.0)
