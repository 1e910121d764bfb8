"""Faces in the W&B app: the annotate run's sampled faces table, the analysis' example strips as images and the
audited faces with both labels; bounded, seeded, offline, and a failure never stops a run."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facemac.analysis.logged import AUDITED_FACES, example_key
from facemac.analysis.run import run
from facemac.annotation.logged import FACES_TABLE
from facemac.annotation.run import annotate
from facemac.audit.format import write_filled
from facemac.faces import load_crops
from facemac.faces.tables import SampledTable, sampled_faces_frame, spread
from tests.annotate_helpers import ATTRS, make_checkpoint, make_folders
from tests.test_faces_examples import faces  # noqa: F401 - the module fixture (tables with images)
from tests.wandb_runfile import offline_runs


def _table(run_folder: Path, key: str) -> tuple[pd.DataFrame, set[str]]:
    """A logged W&B table read back from the offline run: its values (the run files' JSON) and the digests of its
    images (the table's run_table artifact holds them, as media/images/*.png)."""
    (r,) = offline_runs(run_folder, wait_s=20)
    assert key in r.logged_keys()
    (path,) = (r.path.parent / "files").glob(f"media/table/{key}_*.table.json")
    data = json.loads(path.read_text())
    (art,) = [a for a in r.artifacts if a.type == "run_table" and a.name.endswith(f"-{key}")]
    images = {d for p, d in art.files.items() if p.startswith("media/images/")}
    return pd.DataFrame(data["data"], columns=data["columns"]), images


def _digests(crops: list[np.ndarray]) -> set[str]:
    """The W&B digests (base64 MD5 of the PNG wandb.Image writes) of these crops."""
    import wandb

    return {base64.b64encode(hashlib.md5(Path(wandb.Image(c)._path).read_bytes()).digest()).decode() for c in crops}


def _rows(ann: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(ann.glob("part-*.parquet"))], ignore_index=True)


def test_spread_is_even_and_gives_a_small_datasets_share_away():
    assert spread(10, [100, 100, 100]) == [4, 3, 3]
    assert spread(10, [2, 100]) == [2, 8] and spread(10, [3, 4]) == [3, 4] and spread(0, [5]) == [0]


def test_annotate_logs_a_seeded_table_of_sampled_faces(make_cfg, tmp_path):
    root = tmp_path / "data"
    make_folders(root, identities=3, per_identity=3)
    ck = make_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "run"
    annotate(make_cfg("annotate", ["logger=wandb", f"ckpt={ck}", "targets=dcface", f"targets.dcface.root={root}",
                                   "+targets/dataset@targets.copy=dcface", f"targets.copy.root={root}",
                                   "annotate.num_workers=0", "annotate.num_threads=1", "annotate.amp=off",
                                   "annotate.log_faces.count=7", "annotate.log_faces.size=40"], output_dir=out))
    frame, images = _table(out, FACES_TABLE)
    assert len(frame) == 7 and sorted(frame.dataset.value_counts().tolist()) == [3, 4]
    assert list(frame.columns[:5]) == ["image", "dataset", "group", "path", "identity"]
    assert list(frame.columns[5:]) == ATTRS
    shown = []
    for name, rows in frame.groupby("dataset"):
        ann = out / "annotations" / name
        truth = _rows(ann).set_index("path").loc[rows.path, ATTRS].to_numpy()
        assert np.allclose(rows[ATTRS].to_numpy(float), truth, atol=1e-6)
        shown += load_crops(ann, list(rows.path), size=40)
    assert _digests(shown) == images  # the images are the crops the MAC saw, losslessly (shared files: once)
    tables = [SampledTable(n, "real", out / "annotations" / n) for n in ("dcface", "copy")]
    picks = [tuple(sampled_faces_frame(tables, 5, seed, 40, loader=lambda d, p, size: [None] * len(p)).path)
             for seed in (0, 0, 1)]
    assert picks[0] == picks[1] and picks[0] != picks[2]


class _Recorder:
    enabled = True

    def __init__(self):
        self.tables = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc): ...

    def log_image_table(self, name, frame, image_columns=("image",)):
        self.tables[name] = frame

    def __getattr__(self, name):  # everything else a stage logs is accepted and dropped
        return lambda *a, **k: None


def test_a_failing_faces_table_is_a_warning_and_the_run_finishes(make_cfg, tmp_path, monkeypatch, caplog):
    import facemac.faces.tables as tables_mod
    import facemac.stage as stage_mod

    rec = _Recorder()
    monkeypatch.setattr(stage_mod, "create_tracker", lambda *a, **k: rec)
    monkeypatch.setattr(tables_mod, "sampled_faces_frame", lambda *a, **k: 1 / 0)
    root = tmp_path / "data"
    make_folders(root, identities=2, per_identity=2)
    out = tmp_path / "run"
    annotate(make_cfg("annotate", ["logger=wandb", f"ckpt={make_checkpoint(tmp_path / 'm.pt')}", "targets=dcface",
                                   f"targets.dcface.root={root}", "annotate.num_workers=0", "annotate.num_threads=1"],
                      output_dir=out))
    assert (out / "DONE").exists() and FACES_TABLE not in rec.tables
    assert "W&B faces table skipped (ZeroDivisionError" in caplog.text
    with pytest.raises(Exception, match=r"annotate\.log_faces\.count=-1"):
        annotate(make_cfg("annotate", ["logger=none", "targets=dcface", f"targets.dcface.root={root}",
                                       "annotate.log_faces.count=-1"], output_dir=tmp_path / "r2"))


def test_analysis_logs_strips_as_images_and_audited_faces_with_both_labels(make_cfg, faces, tmp_path):  # noqa: F811
    ann, images = faces
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    rows = _rows(ann / "real_x")
    sample = rows.iloc[[3, 0, 7, 11]]
    person = [1, 0, "", 1]  # one face not judged on Smiling
    write_filled(audit_dir / "real_x.csv", pd.DataFrame({"path": list(sample.path), "identity": list(sample.identity),
                                                         "Smiling": person, "Goatee": [0, 0, 1, 0]}))
    out = tmp_path / "run"
    res = run(make_cfg("analyze", ["logger=wandb", f"annotations={ann}", "analyze.n_boot=0",
                                   "analyze.examples.gallery=false", "analyze.examples.attributes=2",
                                   "analyze.examples.audit_faces=3", f"analyze.audit={audit_dir}"], output_dir=out))
    (r,) = offline_runs(out, wait_s=20)
    assert {example_key(a) for a in res["examples"].strips} <= r.logged_keys() and len(res["examples"].strips) == 2
    frame, images = _table(out, AUDITED_FACES)
    assert list(frame.path) == list(sample.path[:3])  # bounded by audit_faces, in the audit's order
    assert list(frame.columns) == ["image", "dataset", "path", "identity", "Smiling:person", "Smiling:mac",
                                   "Smiling:mac_label", "Goatee:person", "Goatee:mac", "Goatee:mac_label"]
    cells = [None if pd.isna(v) else v for v in frame["Smiling:person"]]
    assert cells == [1, 0, None] and frame["Goatee:person"].tolist() == [0, 0, 1]
    assert np.allclose(frame["Smiling:mac"], sample.Smiling[:3]) and \
        frame["Smiling:mac_label"].tolist() == [int(p > 0.5) for p in sample.Smiling[:3]]
    assert _digests(load_crops(ann / "real_x", list(sample.path[:3]), size=112)) == images
    # analyze.audit as a mapping {dataset: csv} names the same audit
    from facemac.analysis.audited_faces import read_audits
    from facemac.analysis.inputs import expand_path

    datasets = expand_path(ann)
    for spec in (str(audit_dir), {"real_x": str(audit_dir / "real_x.csv")}):
        (audit,) = read_audits(spec, datasets).values()
        assert audit.dataset == "real_x" and audit.paths == list(sample.path)
