"""Lineage offline: a stage declares its local inputs by content, with the digest the producing stage logged, and the
offline run files (read back by tests/wandb_runfile.py) carry both sides."""

import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.annotation_fixtures import write_annotation_dir
from facemac.errors import DataError
from facemac.lineage import (annotation_artifact_files, annotation_artifact_name, declare_annotations,
                             declare_checkpoint, model_artifact_name)
from facemac.tracking import NullTracker, create_tracker
from tests.wandb_runfile import offline_runs, read_offline_run


def _cfg(group: str, **extra) -> OmegaConf:
    return OmegaConf.create({"logger": {"backend": "wandb", "project": "t", "mode": "auto", "group": group,
                                        "tags": []}, **extra})


def _checkpoint(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": {"w": torch.zeros(3)}, "attributes": ["A"], "thresholds": [0.5],
                "model_cfg": {"name": "tiny", "timm_name": "test_resnet"}, "data_cfg": {"dataset": "demo_celeba"}},
               path)
    return path


def test_not_tracking_declares_nothing(tmp_path):
    t = NullTracker()
    assert t.use_input("x", "model", [tmp_path]) is None
    assert declare_checkpoint(t, tmp_path / "missing.pt") is None and declare_annotations(t, [tmp_path]) == {}


def test_inputs_declared_offline_resolve_to_the_producers_versions(tmp_path):
    ckpt = _checkpoint(tmp_path / "train" / "checkpoints" / "best.pt")
    ann = write_annotation_dir(tmp_path / "annotate" / "annotations" / "ds_a", "ds_a", "real", ["A", "B"],
                               [(np.random.default_rng(0).random((20, 2)), None)])
    manifest = OmegaConf.to_container(OmegaConf.load(ann / "manifest.json"))
    blob = "x" * 100_000  # a config record longer than a 32 KiB block: read back across FIRST/MIDDLE/LAST chunks

    with create_tracker(_cfg("g", blob=blob), "train", tmp_path / "producer") as producer:
        producer.log_artifact(model_artifact_name({"name": "tiny"}, "demo_celeba"), "model", [ckpt],
                              aliases=["best", "latest"])
        producer.log_artifact(annotation_artifact_name("ds_a"), "annotations",
                              annotation_artifact_files(ann, manifest))
    with create_tracker(_cfg("g"), "analyze", tmp_path / "consumer") as consumer:
        model_digest = declare_checkpoint(consumer, ckpt)
        assert declare_checkpoint(consumer, ckpt) == model_digest  # declared once, however often asked
        ann_digests = declare_annotations(consumer, [ann])

    (made,) = offline_runs(tmp_path / "producer", wait_s=30)
    (used,) = offline_runs(tmp_path / "consumer", wait_s=30)
    assert made.exit_code == 0 and used.exit_code == 0
    assert made.config["blob"] == blob and made.job_type == "train" and made.group == "g"
    outputs = {a.name: a for a in made.outputs}
    assert set(outputs) == {"mac-tiny-demo_celeba", "annotations-ds_a"} and not made.inputs
    inputs = {a.name: a for a in used.inputs}
    assert set(inputs) == set(outputs) and len(used.inputs) == 2  # no duplicate declaration
    for name, a in inputs.items():
        assert a.used and a.digest == outputs[name].digest and a.files == outputs[name].files
    assert inputs["mac-tiny-demo_celeba"].digest == model_digest
    assert ann_digests == {"ds_a": inputs["annotations-ds_a"].digest}
    assert inputs["mac-tiny-demo_celeba"].metadata["path"] == str(ckpt.resolve())


def test_a_torn_run_file_reads_up_to_the_tear_and_a_foreign_file_is_refused(tmp_path):
    with create_tracker(_cfg("g"), "train", tmp_path / "run") as t:
        t.log({"loss": 1.0}, step=0)
        t.summary({"val/mA": 0.5})
    (whole,) = offline_runs(tmp_path / "run", wait_s=30)
    src = whole.path
    assert "loss" in whole.history_keys and "val/mA" in whole.summary_keys
    torn = tmp_path / "torn.wandb"
    shutil.copy(src, torn)
    data = torn.read_bytes()
    torn.write_bytes(data[: len(data) // 2])
    part = read_offline_run(torn)
    assert part.run_id == whole.run_id and part.exit_code is None  # the run record comes first; no exit record
    bad = tmp_path / "bad.wandb"
    bad.write_bytes(b"not a run file")
    with pytest.raises(DataError, match="not a W&B run file"):
        read_offline_run(bad)


def _no_method(run, monkeypatch):
    monkeypatch.delattr(type(run), "_log_artifact")


def _new_signature(run, monkeypatch):
    monkeypatch.setattr(run, "_log_artifact", lambda artifact, *, user_created=False: None)


def _raises(run, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("wandb-core refused the record")
    monkeypatch.setattr(run, "_log_artifact", boom)


@pytest.mark.parametrize("change", [_no_method, _new_signature, _raises])
def test_a_changed_private_wandb_call_skips_lineage_with_a_warning_and_the_run_goes_on(change, tmp_path, monkeypatch,
                                                                                     caplog):
    """Offline lineage uses wandb's private ``Run._log_artifact(..., use_after_commit=True)``: a release may drop it,
    change its signature or make it raise; every stage must still finish its work and its W&B run."""
    ckpt = _checkpoint(tmp_path / "best.pt")
    with create_tracker(_cfg("g"), "annotate", tmp_path / "run") as t:
        assert t.mode == "offline"
        change(t.run, monkeypatch)
        with caplog.at_level("WARNING", logger="facemac.tracking"):
            assert declare_checkpoint(t, ckpt) is None
        t.log({"after": 1.0}, step=0)  # the tracker still works
        t.summary({"val/mA": 0.5})
    assert "lineage skipped: input mac-tiny-demo_celeba (model) is not declared to W&B" in caplog.text
    assert "the run goes on" in caplog.text
    (run,) = offline_runs(tmp_path / "run", wait_s=30)
    assert run.exit_code == 0 and not run.inputs and "after" in run.history_keys and "val/mA" in run.summary_keys
