"""Process-level behaviour: a real kill -9 mid-run then a resume, and torchrun rank sharding vs one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.annotate_helpers import ATTRS, kill_9_after_parts, make_checkpoint, make_folders

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _args(ck: Path, root: Path, run: Path, *extra: str) -> list[str]:
    return ["logger=none", f"ckpt={ck}", "targets=dcface", f"targets.dcface.root={root}", f"hydra.run.dir={run}",
            "annotate.shard_size=10", "annotate.batch_size=5", "annotate.num_workers=0", "annotate.num_threads=1",
            "annotate.max_failure_fraction=0.1", *extra]


def _rows(ann: Path) -> pd.DataFrame:
    parts = sorted(ann.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True).sort_values("path", ignore_index=True)


def test_kill_9_then_resume_has_every_row_once(tmp_path):
    root = tmp_path / "data"
    keys = make_folders(root, identities=20, per_identity=20, size=48, broken=3)  # 400 readable + 3 broken, 41 shards
    ck = make_checkpoint(tmp_path / "m.pt")
    run = tmp_path / "run"
    ann = run / "annotations" / "dcface"
    cmd = [sys.executable, "annotate.py", *_args(ck, root, run)]
    done_at_kill = kill_9_after_parts(cmd, REPO, ann)
    assert not (ann / "manifest.json").exists() and done_at_kill < 41, "the run finished before it could be killed"

    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming" in rerun.stdout + rerun.stderr
    rows = _rows(ann)
    readable = sorted(k for k in keys)
    assert list(rows["path"]) == readable  # no row missing, none duplicated
    fails = pd.read_csv(ann / "failures.csv")
    assert sorted(fails["path"]) == [f"id{b:03d}/zz_broken{b}.jpg" for b in range(3)]
    m = json.loads((ann / "manifest.json").read_text())
    assert m["complete"] and m["num_images"] == 400 and m["num_failures"] == 3 and len(m["parts"]) == 41
    assert not list(ann.glob(".*.tmp")) and (run / "DONE").exists()


def test_torchrun_two_ranks_match_one_process(tmp_path):
    root = tmp_path / "data"
    make_folders(root, identities=6, per_identity=5, size=40, broken=1)  # 31 listed → 4 shards: uneven split
    ck = make_checkpoint(tmp_path / "m.pt", drop_rate=0.3)
    extra = ("annotate.mc_samples=3",)
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run([sys.executable, "annotate.py", *_args(ck, root, one, *extra)], cwd=REPO,
                        capture_output=True, text=True, timeout=600)
    assert r1.returncode == 0, r1.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                         "annotate.py", *_args(ck, root, two, *extra)], cwd=REPO, capture_output=True, text=True,
                        timeout=600, env=env)
    assert r2.returncode == 0, r2.stderr[-3000:]
    a, b = _rows(one / "annotations" / "dcface"), _rows(two / "annotations" / "dcface")
    assert list(a["path"]) == list(b["path"]) and len(a) == 30
    cols = ATTRS + [f"reliability:{x}" for x in ATTRS]
    # same shards → same batches → same arithmetic; 1e-6 only absorbs thread-count effects
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=0, atol=1e-6)
    ma = json.loads((one / "annotations" / "dcface" / "manifest.json").read_text())
    mb = json.loads((two / "annotations" / "dcface" / "manifest.json").read_text())
    assert [p["rows"] for p in ma["parts"]] == [p["rows"] for p in mb["parts"]]
    assert (ma["num_failures"], mb["num_failures"]) == (1, 1) and mb["complete"]
    assert (two / "DONE").exists()



def test_demo_targets_default_set(make_cfg, tmp_path):
    """targets=demo: the four generated targets, each a complete table whose paths are exactly its labels.csv rows."""
    pytest.importorskip("facemac.data.demo")
    from facemac.annotation.evaluate import evaluate_run
    from facemac.annotation.run import annotate

    ck = make_checkpoint(tmp_path / "m.pt", attributes=["Male", "Smiling"])
    run = tmp_path / "run"
    cfg = make_cfg("annotate", ["logger=none", f"ckpt={ck}", "annotate.num_workers=0", "annotate.num_threads=1",
                                "demo.celeba_identities=4", "demo.celeba_images_per_identity=2",
                                "demo.target_identities=3", "demo.target_images_per_identity=2"], output_dir=run)
    annotate(cfg)
    groups = {}
    for name in ("demo_real_a", "demo_real_b", "demo_synth_a", "demo_synth_b"):
        ann = run / "annotations" / name
        m = json.loads((ann / "manifest.json").read_text())
        groups[name] = m["group"]
        truth = pd.read_csv(Path(m["root"]) / "labels.csv")
        assert sorted(_rows(ann)["path"]) == sorted(truth["path"]) and m["complete"]
    assert groups == {"demo_real_a": "real", "demo_real_b": "real", "demo_synth_a": "synthetic",
                      "demo_synth_b": "synthetic"}
    acc = evaluate_run(run)  # a random model: only that the join and the scoring run on real demo labels
    assert set(acc["dataset"]) == set(groups) and set(acc["attribute"]) == {"Male", "Smiling"}
