"""geometry: detect at process level: kill -9 mid-run, resume, every image once (faceless ones listed once)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from facemac.data.demo.loose import write_loose_target
from tests.annotate_helpers import kill_9_after_parts, make_checkpoint

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
pytest.importorskip("facenet_pytorch")


def test_detect_kill_9_then_resume_has_every_image_once(tmp_path):
    target = write_loose_target(tmp_path / "photos", identities=12, images=8, layout="assorted", progress=False)
    for b in range(3):  # faceless images: listed in failures.csv exactly once, whatever the resume point
        cv2.imwrite(str(target.root / f"id0000{b + 1}" / "zz_blank.png"), np.full((150, 200, 3), 90 + b, np.uint8))
    ck = make_checkpoint(tmp_path / "m.pt")
    run = tmp_path / "run"
    ann = run / "annotations" / "dcface"
    cmd = [sys.executable, "annotate.py", "logger=none", f"ckpt={ck}", "targets=dcface",
           f"targets.dcface.root={target.root}", "targets.dcface.geometry=detect", f"hydra.run.dir={run}",
           "annotate.shard_size=6", "annotate.batch_size=3", "annotate.max_failure_fraction=0.25"]
    done_at_kill = kill_9_after_parts(cmd, REPO, ann, parts=2)
    assert not (ann / "manifest.json").exists() and done_at_kill < 17, "the run finished before it could be killed"

    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming" in rerun.stdout + rerun.stderr
    rows = pd.concat([pd.read_parquet(p) for p in sorted(ann.glob("part-*.parquet"))], ignore_index=True)
    fails = pd.read_csv(ann / "failures.csv")
    listed = sorted(p.relative_to(target.root).as_posix() for p in target.root.glob("*/*.*"))
    assert len(rows) == len(set(rows["path"])) and not set(rows["path"]) & set(fails["path"])
    assert sorted(list(rows["path"]) + list(fails["path"])) == listed  # every image once: a row or a failure
    assert {f"id0000{b + 1}/zz_blank.png" for b in range(3)} <= set(fails["path"])
    assert (fails["reason"] == "no face detected").all()
    m = json.loads((ann / "manifest.json").read_text())
    assert m["complete"] and m["num_images"] == len(rows) and m["num_failures"] == len(fails) and len(m["parts"]) == 17
    assert rows["detect:score"].min() >= 0.9
