"""Acceptance on the demo, end to end: the README's main job (train → annotate → analyze, default settings).

One run of `python -m facemac.pipeline experiment=demo` checks the three stages against what the demo makes knowable:
the MAC's test accuracy, its annotation accuracy against each target's ground-truth labels.csv, and the measured KL
against the *true* KL computed from the profiles' exact attribute rates.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from facemac.analysis.divergence import bernoulli_kl
from facemac.annotation.evaluate import evaluate_run
from facemac.data.demo import PROFILES, TARGET_NAMES

ROOT = Path(__file__).resolve().parents[1]
REAL = [t for t in TARGET_NAMES if PROFILES[t].group == "real"]
SYNTH = [t for t in TARGET_NAMES if PROFILES[t].group == "synthetic"]

# Tolerance of measured vs true per-attribute KL, in nats: |measured - true| <= ABS_TOL + REL_TOL * true.
# It has to absorb (a) sampling: each target is 2,000 images of only 250 identities, and identity-level attributes
# that a synthetic profile makes rare (rates of 0.3-2 %) move KL(real‖synth) by tenths of a nat between samples,
# (b) the α = 0.5 smoothing, and (c) the MAC's errors (~4 % per attribute on targets it was not trained on).
ABS_TOL, REL_TOL = 0.15, 0.5


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo-pipeline")
    env = dict(os.environ, FACEMAC_OUTPUTS=str(folder / "outputs"))
    proc = subprocess.run([sys.executable, "-m", "facemac.pipeline", "experiment=demo", "logger=none",
                           "--dir", str(folder / "run")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return folder / "run"


@pytest.mark.slow
def test_training_reaches_the_accuracy_target(demo_run):
    test = json.loads((demo_run / "train" / "metrics.json").read_text())["test"]
    assert test["mean_accuracy"] >= 0.95 and test["mA"] >= 0.92, {k: test[k] for k in ("mean_accuracy", "mA")}


@pytest.mark.slow
def test_annotations_match_each_targets_ground_truth(demo_run):
    acc = evaluate_run(demo_run / "annotate").groupby("dataset").accuracy.mean()
    assert sorted(acc.index) == sorted(TARGET_NAMES)
    assert (acc >= 0.93).all(), acc.to_dict()


@pytest.mark.slow
def test_measured_kl_tracks_the_true_kl_and_its_asymmetry(demo_run):
    kl = pd.read_csv(demo_run / "analyze" / "kl_attributes.csv")
    pairs = pd.read_csv(demo_run / "analyze" / "kl_pairs.csv").set_index(["p", "q"])
    for real in REAL:
        for synth in SYNTH:
            for p, q in ((real, synth), (synth, real)):
                true_p, true_q = PROFILES[p].true_rates(), PROFILES[q].true_rates()
                rows = kl[(kl.p == p) & (kl.q == q)]
                assert len(rows) == len(true_p)
                for r in rows.itertuples():
                    true = float(bernoulli_kl(true_p[r.attribute], true_q[r.attribute]))
                    assert abs(r.kl - true) <= ABS_TOL + REL_TOL * true, (p, q, r.attribute, r.kl, true)
            # the direction the profiles were built with, beyond the bootstrap's doubt
            forward, backward = pairs.loc[(real, synth)], pairs.loc[(synth, real)]
            assert forward.kl_sum > 1.5 * backward.kl_sum
            assert forward.kl_mean_ci_low > backward.kl_mean_ci_high
            # experiment=demo's joint over six attributes is estimable (few rare combinations) and agrees
            assert max(forward.joint_sparse_p, forward.joint_sparse_q) <= 0.5
            assert forward.kl_joint_ci_low > backward.kl_joint_ci_high
    report = (demo_run / "analyze" / "report.md").read_text()
    assert "KL(real(pooled) ‖ synthetic(pooled))" in report and "is larger than" in report
    assert "joint KL over 6 attributes" in report and "not estimable" not in report


@pytest.mark.slow
def test_ground_truth_vs_annotations_of_one_target_is_close_to_zero(demo_run, make_cfg, tmp_path):
    from facemac.analysis.run import run as analyze

    ann = demo_run / "annotate" / "annotations"
    manifest = json.loads((ann / "demo_synth_a" / "manifest.json").read_text())
    labels = Path(manifest["root"]) / "labels.csv"
    cfg = make_cfg("analyze", ["logger=none", "analyze.n_boot=0", f"inputs=[{ann / 'demo_synth_a'},{labels},"
                                                              f"{ann / 'demo_real_a'}]"])
    pairs = analyze(cfg)["tables"].kl_pairs.set_index(["p", "q"])
    error = pairs.loc[("demo_synth_a", "demo_synth_a(labels)")].kl_mean
    between_groups = pairs.loc[("demo_real_a", "demo_synth_a")].kl_mean
    assert error < 0.03 and error < 0.1 * between_groups, (error, between_groups)


# bf16 autocast (annotate.amp=auto picks it on CPUs with native bf16) vs fp32, same checkpoint, same images: hard
# labels must agree on >= 99.5 % of image x attribute cells; probabilities within BF16_MAX_ABS per cell and
# BF16_MEAN_ABS on average; per-attribute positive rates (what the KL sees) within BF16_RATE_ABS.
# Measured with a demo_tiny checkpoint on the four demo targets (8,000 images x 24 attributes): 99.967 % agree,
# max |dp| 0.027, mean 0.0007, largest rate change 0.0006.
BF16_AGREEMENT, BF16_MAX_ABS, BF16_MEAN_ABS, BF16_RATE_ABS = 0.995, 0.06, 0.002, 0.003


@pytest.mark.slow
def test_bf16_annotation_keeps_the_fp32_labels(demo_run, tmp_path):
    import numpy as np
    import torch

    from facemac.annotation.inference import Annotator
    from facemac.annotation.targets import TargetSpec, load_target_table
    from facemac.data.dataset import FaceDataset, collate_faces

    ck = demo_run / "train" / "checkpoints" / "best.pt"
    cpu = torch.device("cpu")
    fp32 = Annotator.from_checkpoint(ck, cpu, amp="off")
    bf16 = Annotator.from_checkpoint(ck, cpu, amp="bf16", channels_last=True)  # the CPU default's variant
    thr = np.asarray(fp32.thresholds, dtype=np.float32)
    agree, diffs = [], []
    for name in TARGET_NAMES:
        m = json.loads((demo_run / "annotate" / "annotations" / name / "manifest.json").read_text())
        table = load_target_table(TargetSpec(name, m["group"], m["source_format"], m["root"], "arcface_112"), tmp_path)
        ds = FaceDataset(table, fp32.preprocessor)
        p32, p16 = [], []
        for s in range(0, len(table), 256):
            x = collate_faces([ds[i] for i in range(s, min(s + 256, len(table)))])["image"]
            p32.append(fp32.predict(x)[0].numpy())
            p16.append(bf16.predict(x)[0].numpy())
        a, b = np.concatenate(p32), np.concatenate(p16)
        rate_change = np.abs((a > thr).mean(0) - (b > thr).mean(0)).max()
        assert rate_change <= BF16_RATE_ABS, (name, rate_change)
        agree.append((a > thr) == (b > thr))
        diffs.append(np.abs(a - b))
    agree_all, diff_all = np.concatenate(agree), np.concatenate(diffs)
    assert agree_all.size >= 4 * 2000 * 20
    assert agree_all.mean() >= BF16_AGREEMENT, agree_all.mean()
    assert diff_all.max() <= BF16_MAX_ABS and diff_all.mean() <= BF16_MEAN_ABS, (diff_all.max(), diff_all.mean())
