"""annotate(cfg) end to end on small generated folder trees: contract, numbers vs an independent forward, resume."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from facemac.annotation.evaluate import evaluate_dataset
from facemac.annotation.run import annotate
from facemac.errors import CheckpointError, DataError
from facemac.hashing import file_sha256
from facemac.models.mac import create_mac
from facemac.checkpoint import load_checkpoint
from tests.annotate_helpers import ATTRS, make_checkpoint, make_folders


def _cfg(make_cfg, ck: Path, root: Path, run: Path, *extra: str):
    return make_cfg("annotate", ["logger=none", f"ckpt={ck}", "targets=dcface", f"targets.dcface.root={root}",
                                 "annotate.shard_size=5", "annotate.batch_size=3", "annotate.num_workers=0", "annotate.num_threads=1",
                                 "annotate.precision=fp32",  # the oracle is fp32 (auto = bf16 on CPUs with native bf16)
                                 *extra], output_dir=run)


def _rows(ann: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(ann.glob("part-*.parquet"))], ignore_index=True)


def _oracle(ck: Path, root: Path, keys: list[str]) -> np.ndarray:
    """Probabilities computed without the annotation code: cv2 read, scale to the input size by a hand-written
    matrix (aligned crops are resampled like landmark-warped photos), normalise, plain forward."""
    c = load_checkpoint(ck)
    model = create_mac({**c["model_cfg"], "pretrained": False}, len(c["attributes"]))
    model.load_state_dict(c["model_state"])
    model.eval()
    size = c["data_cfg"]["input_size"][-1]
    imgs = []
    for k in keys:
        img = cv2.cvtColor(cv2.imread(str(root / k)), cv2.COLOR_BGR2RGB)
        f = size / img.shape[1]  # square aligned crops: the template-to-template similarity is this scale
        imgs.append(cv2.warpAffine(img, np.array([[f, 0, 0], [0, f, 0]], np.float32), (size, size),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(c["data_cfg"]["mean"]).view(1, 3, 1, 1)) / torch.tensor(c["data_cfg"]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.sigmoid(model(x)).numpy()


def test_contract_and_probabilities(make_cfg, tmp_path):
    ck = make_checkpoint(tmp_path / "best.pt")
    root = tmp_path / "data"
    keys = make_folders(root, identities=3, per_identity=4, broken=1)
    res = annotate(_cfg(make_cfg, ck, root, tmp_path / "run", "annotate.max_failure_fraction=0.1"))
    ann = tmp_path / "run" / "annotations" / "dcface"
    rows = _rows(ann)
    assert list(rows.columns) == ["path", "identity", *ATTRS]
    assert sorted(rows["path"]) == sorted(keys) and rows["path"].is_unique
    assert (rows["identity"] == rows["path"].str.split("/").str[0]).all()
    assert all(rows[a].dtype == np.float32 for a in ATTRS)
    want = _oracle(ck, root, list(rows["path"]))
    np.testing.assert_allclose(rows[ATTRS].to_numpy(), want, atol=1e-5)
    m = json.loads((ann / "manifest.json").read_text())
    assert m["format"] == "facemac-annotations" and m["version"] == 1 and m["complete"] is True
    assert (m["dataset"], m["group"], m["source_format"], m["root"]) == ("dcface", "synthetic", "folders", str(root))
    assert m["checkpoint_sha256"] == file_sha256(ck) and m["attributes"] == ATTRS
    assert m["thresholds"] == {a: 0.5 for a in ATTRS} and m["mc_samples"] == 0
    assert (m["num_images"], m["num_failures"]) == (12, 1)
    assert [p["file"] for p in m["parts"]] == sorted(p.name for p in ann.glob("part-*.parquet"))
    assert sum(p["rows"] for p in m["parts"]) == 12
    assert all(p["sha256"] == file_sha256(ann / p["file"]) for p in m["parts"])
    fails = pd.read_csv(ann / "failures.csv")
    assert list(fails.columns) == ["path", "reason"] and list(fails["path"]) == ["id000/zz_broken0.jpg"]
    rate = (rows[ATTRS].to_numpy() >= 0.5).mean(0)
    np.testing.assert_allclose([res["dcface"].positive_rate[a] for a in ATTRS], rate)
    assert (tmp_path / "run" / "DONE").exists() and (tmp_path / "run" / "annotation_summary.csv").exists()


def test_inference_threads_give_the_dataloader_paths_rows(make_cfg, tmp_path, caplog):
    """The CPU default (inference threads that decode their own batches) and the DataLoader path write the same
    parts: same rows in the same order, same probabilities, same failures; the log says which ran and why."""
    ck = make_checkpoint(tmp_path / "best.pt")
    root = tmp_path / "data"
    make_folders(root, identities=4, per_identity=5, broken=2)
    outs = {}
    for name, extra in (("loader", []), ("threads", ["annotate.replicas=3", "annotate.num_workers=auto",
                                                      "annotate.num_threads=1"])):
        with caplog.at_level("INFO"):
            annotate(_cfg(make_cfg, ck, root, tmp_path / name, "annotate.max_failure_fraction=0.2", *extra))
        outs[name] = tmp_path / name / "annotations" / "dcface"
    assert "3 inference threads x 1 torch thread(s)" in caplog.text and "annotate.replicas=3" in caplog.text
    a, b = _rows(outs["loader"]), _rows(outs["threads"])
    assert list(a["path"]) == list(b["path"])
    np.testing.assert_allclose(a[ATTRS].to_numpy(), b[ATTRS].to_numpy(), atol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(outs["loader"] / "failures.csv"),
                                  pd.read_csv(outs["threads"] / "failures.csv"))


def test_resume_refills_missing_parts_and_keeps_failures(make_cfg, tmp_path):
    ck = make_checkpoint(tmp_path / "best.pt")
    root = tmp_path / "data"
    make_folders(root, identities=4, per_identity=3, broken=2)
    cfg = _cfg(make_cfg, ck, root, tmp_path / "run", "annotate.max_failure_fraction=0.5")
    annotate(cfg)
    ann = tmp_path / "run" / "annotations" / "dcface"
    first = _rows(ann)
    first_fail = pd.read_csv(ann / "failures.csv")
    # as after a kill: one part gone (its shard holds a broken image), a stale temporary, no manifest
    (ann / "part-00000.parquet").unlink()
    (ann / ".part-00001.parquet.999.tmp").write_bytes(b"half")
    (ann / "manifest.json").unlink()
    (tmp_path / "run" / "DONE").unlink()
    mtime = (ann / "part-00002.parquet").stat().st_mtime_ns
    annotate(cfg)
    assert (ann / "part-00002.parquet").stat().st_mtime_ns == mtime  # finished shards are not redone
    again = _rows(ann)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first_fail, pd.read_csv(ann / "failures.csv"))
    assert len(first_fail) == 2 and not list(ann.glob(".*.tmp"))


def test_refuses_to_resume_with_another_checkpoint(make_cfg, tmp_path):
    root = tmp_path / "data"
    make_folders(root, identities=2, per_identity=2)
    annotate(_cfg(make_cfg, make_checkpoint(tmp_path / "a.pt", seed=0), root, tmp_path / "run"))
    other = make_checkpoint(tmp_path / "b.pt", seed=1)
    with pytest.raises(CheckpointError, match="refusing to resume"):
        annotate(_cfg(make_cfg, other, root, tmp_path / "run"))


def test_geometry_mismatch_is_reported(make_cfg, tmp_path):
    root = tmp_path / "data"
    make_folders(root, identities=1, per_identity=2)
    ck = make_checkpoint(tmp_path / "loose.pt", align="resize")  # trained on loose crops, target is arcface_112
    with pytest.raises(DataError, match="dcface.*ArcFace-aligned"):
        annotate(_cfg(make_cfg, ck, root, tmp_path / "run"))
    assert not (tmp_path / "run" / "annotations").exists()  # refused before any work


def test_too_many_failures_fail_after_listing(make_cfg, tmp_path):
    root = tmp_path / "data"
    make_folders(root, identities=2, per_identity=2, broken=2)
    with pytest.raises(DataError, match=r"2 of 6 images \(33.3%\) are unreadable"):
        annotate(_cfg(make_cfg, make_checkpoint(tmp_path / "m.pt"), root, tmp_path / "run"))
    ann = tmp_path / "run" / "annotations" / "dcface"
    assert len(pd.read_csv(ann / "failures.csv")) == 2
    assert json.loads((ann / "manifest.json").read_text())["complete"] is False


def test_nested_identity_folders_and_reliability(make_cfg, tmp_path):
    root = tmp_path / "data"
    keys = make_folders(root, identities=4, per_identity=2, nested=True)
    ck = make_checkpoint(tmp_path / "m.pt", drop_rate=0.5)
    annotate(_cfg(make_cfg, ck, root, tmp_path / "run", "annotate.mc_samples=4", "targets.dcface.depth=2"))
    rows = _rows(tmp_path / "run" / "annotations" / "dcface")
    assert sorted(rows["path"]) == sorted(keys)
    assert set(rows["identity"]) == {"g0/id000", "g1/id001", "g0/id002", "g1/id003"}  # group/identity, as read
    rel = rows[[f"reliability:{a}" for a in ATTRS]].to_numpy()
    assert rel.dtype == np.float32 and (rel >= 0).all() and (rel <= 1).all() and (rel < 1).any()


def test_evaluate_against_labels_csv(make_cfg, tmp_path):
    root = tmp_path / "data"
    keys = make_folders(root, identities=2, per_identity=3)
    ck = make_checkpoint(tmp_path / "m.pt")
    annotate(_cfg(make_cfg, ck, root, tmp_path / "run"))
    rows = _rows(tmp_path / "run" / "annotations" / "dcface").set_index("path")
    truth = (rows.loc[keys, ATTRS] >= 0.5).astype(int)
    truth.iloc[0, 0] = 1 - truth.iloc[0, 0]  # one wrong label out of 6 for Male
    truth.reset_index().assign(identity="x").to_csv(root / "labels.csv", index=False)
    acc = evaluate_dataset(tmp_path / "run" / "annotations" / "dcface").set_index("attribute")["accuracy"]
    assert acc["Male"] == pytest.approx(5 / 6) and acc["Smiling"] == 1.0 and acc["Eyeglasses"] == 1.0


def test_manifest_records_both_threshold_sets_and_labels_use_the_counting_one(make_cfg, tmp_path):
    root = tmp_path / "data"
    keys = make_folders(root, identities=2, per_identity=3)
    counting = [0.1, 0.5, 0.9]
    ck = make_checkpoint(tmp_path / "m.pt", counting=counting)
    res = annotate(_cfg(make_cfg, ck, root, tmp_path / "run"))
    ann = tmp_path / "run" / "annotations" / "dcface"
    m = json.loads((ann / "manifest.json").read_text())
    assert m["thresholds"] == {a: 0.5 for a in ATTRS}  # the reporting set keeps its key and meaning
    assert m["counting_thresholds"] == dict(zip(ATTRS, counting)) and m["counting_rule"] == "accuracy"
    assert (m["label_rule"], m["label_thresholds"]) == ("probability > threshold", "counting_thresholds")
    rows = _rows(ann).set_index("path").loc[keys, ATTRS]
    np.testing.assert_allclose([res["dcface"].positive_rate[a] for a in ATTRS], (rows.to_numpy() > counting).mean(0))
    truth = (rows > counting).astype(int)  # labels by the counting rule: evaluate scores that set by default
    truth.reset_index().assign(identity="x").to_csv(root / "labels.csv", index=False)
    assert (evaluate_dataset(ann)["accuracy"] == 1.0).all()
    reporting = evaluate_dataset(ann, label_rule="reporting").set_index("attribute")["accuracy"]
    np.testing.assert_allclose(reporting, ((rows > 0.5) == (rows > counting)).to_numpy().mean(0))
    # a checkpoint from before counting thresholds: one set, the labels use it
    annotate(_cfg(make_cfg, make_checkpoint(tmp_path / "old.pt"), root, tmp_path / "run_old"))
    old = json.loads((tmp_path / "run_old" / "annotations" / "dcface" / "manifest.json").read_text())
    assert old["label_thresholds"] == "thresholds" and "counting_thresholds" not in old


def test_packed_recordio_target(make_cfg, tmp_path):
    """insightface train.rec/train.idx: paths are record keys, identities the header labels."""
    from tests.recordio_writer import write_recordio

    rng = np.random.default_rng(0)
    imgs = [cv2.imencode(".jpg", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))[1].tobytes() for _ in range(7)]
    imgs[3] = b"garbage bytes, not a jpeg"
    write_recordio(tmp_path / "rec", imgs, [0, 0, 0, 1, 1, 2, 2])
    ck = make_checkpoint(tmp_path / "m.pt")
    run = tmp_path / "run"
    cfg = make_cfg("annotate", ["logger=none", f"ckpt={ck}", "targets=casia", f"targets.casia_webface.root={tmp_path / 'rec'}",
                                "annotate.shard_size=4", "annotate.num_workers=0", "annotate.num_threads=1",
                                "annotate.max_failure_fraction=0.2"], output_dir=run)
    annotate(cfg)
    ann = run / "annotations" / "casia_webface"
    rows = _rows(ann)
    assert list(rows["path"]) == ["1", "2", "3", "5", "6", "7"]  # record 4 is unreadable
    assert list(rows["identity"]) == ["0", "0", "0", "1", "2", "2"]
    assert list(pd.read_csv(ann / "failures.csv", dtype=str)["path"]) == ["4"]
    m = json.loads((ann / "manifest.json").read_text())
    assert (m["source_format"], m["num_images"], m["num_failures"]) == ("recordio", 6, 1)


class _RecordingTracker:
    """Stands in for W&B: records what the stage logs."""

    def __init__(self):
        self.tables, self.artifacts, self.summaries = {}, [], {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finished = True

    def log_table(self, name, frame):
        self.tables[name] = frame

    def log_artifact(self, name, type, paths, aliases=None, metadata=None):
        self.artifacts.append((name, type, [Path(p) for p in paths], metadata))

    def summary(self, values):
        self.summaries.update(values)

    def use_artifact(self, ref, type=None):
        raise AssertionError("not expected")


def test_tracking_table_and_one_artifact_per_dataset(make_cfg, tmp_path, monkeypatch):
    import facemac.stage as stage_mod

    rec = _RecordingTracker()
    seen = {}
    monkeypatch.setattr(stage_mod, "create_tracker", lambda cfg, job_type, out, rank: seen.update(jt=job_type) or rec)
    root = tmp_path / "data"
    make_folders(root, identities=2, per_identity=3)
    ck = make_checkpoint(tmp_path / "m.pt")
    cfg = _cfg(make_cfg, ck, root, tmp_path / "run", "+targets/dataset@targets.copy=dcface",
               f"targets.copy.root={root}")
    res = annotate(cfg)
    assert seen["jt"] == "annotate" and rec.finished
    frame = rec.tables["annotation_summary"]
    assert list(frame["dataset"]) == ["dcface", "copy"] and list(frame["images"]) == [6, 6]
    assert [f"rate:{a}" for a in ATTRS] == [c for c in frame.columns if c.startswith("rate:")]
    assert frame.loc[0, "rate:Smiling"] == pytest.approx(res["dcface"].positive_rate["Smiling"])
    assert [(n, t) for n, t, _, _ in rec.artifacts] == [("annotations-dcface", "annotations"),
                                                         ("annotations-copy", "annotations")]
    files = {p.name for p in rec.artifacts[0][2]}
    assert files == {"part-00000.parquet", "part-00001.parquet", "manifest.json", "failures.csv"}
    assert rec.summaries["dcface/images"] == 6


def test_wandb_offline_run(make_cfg, tmp_path):
    """logger=wandb without credentials: an offline job_type=annotate run, nothing uploaded, the stage completes."""
    root = tmp_path / "data"
    make_folders(root, identities=2, per_identity=2)
    ck = make_checkpoint(tmp_path / "m.pt")
    run = tmp_path / "run"
    cfg = make_cfg("annotate", ["logger=wandb", f"ckpt={ck}", "targets=dcface", f"targets.dcface.root={root}",
                                "annotate.num_workers=0", "annotate.num_threads=1"], output_dir=run)
    annotate(cfg)
    assert (run / "DONE").exists()
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))


def test_a_one_off_folder_needs_no_file_and_annotate_only_keeps_the_demo_targets_out(make_cfg, tmp_path):
    """#22 item 5: the documented way to annotate a folder with no target file of its own."""
    ck = make_checkpoint(tmp_path / "best.pt")
    root = tmp_path / "mine"
    keys = make_folders(root, identities=2, per_identity=3)
    cfg = make_cfg("annotate", ["logger=none", f"ckpt={ck}", f"+targets.mine={{format: folders, root: {root}, "
                                "group: synthetic}", "annotate.only=[mine]", "annotate.num_workers=0",
                                "annotate.num_threads=1"], output_dir=tmp_path / "run")
    assert list(annotate(cfg)) == ["mine"]  # the four demo targets of the default set are not touched
    manifest = json.loads((tmp_path / "run" / "annotations" / "mine" / "manifest.json").read_text())
    assert (manifest["group"], manifest["num_images"], manifest["root"]) == ("synthetic", len(keys), str(root))
    assert sorted(p.name for p in (tmp_path / "run" / "annotations").iterdir()) == ["mine"]


def test_targets_null_is_one_error_line_not_a_hydra_traceback(tmp_path):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(repo / "annotate.py"), "targets=null", "logger=none",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: targets=null: a target set cannot be unset") and "annotate.only=[mine]" in line
