"""End to end: run(cfg) on annotation tables written per the contract and on a labels.csv, checked against oracles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from tests.annotation_fixtures import write_annotation_dir
from facemac.analysis.run import run
from facemac.errors import ConfigError

ATTRS = ["a", "b", "c"]
# The hand example of test_analysis_math: P = 000 x2, 001, 011; Q = 000, 010 x3 (attribute order a, b, c).
P_ROWS = [(0, 0, 0), (0, 0, 0), (0, 0, 1), (0, 1, 1)]
Q_ROWS = [(0, 0, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0)]
KL_JOINT_PQ = (2.5 * math.log(2.5 / 1.5) + 3 * math.log(3) + 0.5 * math.log(1 / 7)) / 6
KL_JOINT_QP = (1.5 * math.log(1.5 / 2.5) + 2 * 0.5 * math.log(1 / 3) + 3.5 * math.log(7)) / 6


def _probs(rows, thresholds=(0.5, 0.5, 0.5)):
    """Hard rows -> probabilities just above/below each threshold (so labels come from the manifest thresholds)."""
    t = np.array(list(thresholds), dtype=float)
    return np.where(np.array(rows, bool), t + 0.05, t - 0.05).astype(np.float32)


@pytest.fixture
def ann(tmp_path):
    root = tmp_path / "annotations"
    thr = {"a": 0.3, "b": 0.6, "c": 0.5}
    write_annotation_dir(root / "P", "P", "real", ATTRS,
                         [(_probs(P_ROWS[:2], thr.values()), ["p1", "p1"]), (_probs(P_ROWS[2:], thr.values()),
                                                                             ["p2", None])], thresholds=thr)
    write_annotation_dir(root / "Q", "Q", "synthetic", ATTRS, [(_probs(Q_ROWS), ["q1", "q2", "q2", "q3"])])
    return root


def _read(out):
    return (pd.read_csv(out / "rates.csv"), pd.read_csv(out / "kl_attributes.csv"), pd.read_csv(out / "kl_pairs.csv"))


def test_run_end_to_end_matches_oracles(make_cfg, ann, tmp_path):
    cfg = make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.n_boot=20"])
    res = run(cfg)
    out = res["output_dir"]
    rates, kla, pairs = _read(out)
    assert list(rates.columns) == ["dataset", "group", "attribute", "n", "positives", "rate", "ci_low", "ci_high",
                                   "rate_counted", "correction"]
    assert list(kla.columns) == ["p", "q", "attribute", "kl", "ci_low", "ci_high", "js", "js_ci_low", "js_ci_high",
                                 "kl_counted", "js_counted", "correction"]
    assert (rates.correction == "none").all() and np.allclose(rates.rate, rates.rate_counted)  # no audit: counted
    assert list(pairs.columns)[:8] == ["p", "q", "kl_mean", "kl_sum", "kl_joint", "coverage", "joint_sparse_p",
                                       "joint_sparse_q"]  # the Jensen-Shannon columns come after the KL ones
    assert {"js_mean", "js_sum", "js_joint", "js_mean_ci_low", "js_joint_ci_high"} <= set(pairs.columns)
    assert set(rates.dataset) == {"P", "Q", "real(pooled)", "synthetic(pooled)"}
    r = rates.set_index(["dataset", "attribute"])
    assert r.loc[("P", "c"), "positives"] == 2 and r.loc[("Q", "b"), "positives"] == 3 and r.loc[("P", "a"), "n"] == 4
    # per-attribute KL: scipy entropy on the smoothed Bernoulli pair
    k = kla.set_index(["p", "q", "attribute"])["kl"]
    for p_name, q_name, p_rows, q_rows in (("P", "Q", P_ROWS, Q_ROWS), ("Q", "P", Q_ROWS, P_ROWS)):
        for j, attr in enumerate(ATTRS):
            pp = (sum(row[j] for row in p_rows) + 0.5) / (4 + 1)
            qq = (sum(row[j] for row in q_rows) + 0.5) / (4 + 1)
            assert k[(p_name, q_name, attr)] == pytest.approx(entropy([pp, 1 - pp], [qq, 1 - qq]), abs=1e-9)
            # JS on the same smoothed pair; scipy's jensenshannon is its square root (natural log)
            js = kla.set_index(["p", "q", "attribute"]).loc[(p_name, q_name, attr), "js"]
            assert js == pytest.approx(jensenshannon([pp, 1 - pp], [qq, 1 - qq]) ** 2, abs=1e-9)
    pr = pairs.set_index(["p", "q"])
    # JS is one number per pair: both directions agree; joint on the union {000, 001, 010, 011} smoothed as the KL
    assert pr.loc[("P", "Q"), "js_mean"] == pytest.approx(pr.loc[("Q", "P"), "js_mean"], abs=1e-12)
    p_joint, q_joint = np.array([2.5, 1.5, 0.5, 1.5]) / 6, np.array([1.5, 0.5, 3.5, 0.5]) / 6
    for pair in (("P", "Q"), ("Q", "P")):
        assert pr.loc[pair, "js_joint"] == pytest.approx(jensenshannon(p_joint, q_joint) ** 2, abs=1e-9)
    assert pr.loc[("P", "Q"), "js_joint_ci_low"] <= pr.loc[("P", "Q"), "js_joint_ci_high"] <= np.log(2)
    assert pr.loc[("P", "Q"), "kl_joint"] == pytest.approx(KL_JOINT_PQ, abs=1e-9)
    assert pr.loc[("Q", "P"), "kl_joint"] == pytest.approx(KL_JOINT_QP, abs=1e-9)
    assert pr.loc[("P", "Q"), "coverage"] == 0.5 and pr.loc[("Q", "P"), "coverage"] == 0.25
    assert pr.loc[("P", "Q"), "kl_sum"] == pytest.approx(sum(k[("P", "Q", a)] for a in ATTRS), abs=1e-12)
    assert pr.loc[("P", "Q"), "kl_mean"] == pytest.approx(pr.loc[("P", "Q"), "kl_sum"] / 3, abs=1e-12)
    # one real, one synthetic: the pooled pair is the same pair
    assert pr.loc[("real(pooled)", "synthetic(pooled)"), "kl_joint"] == pytest.approx(KL_JOINT_PQ, abs=1e-9)
    lo, hi = pr.loc[("P", "Q"), "kl_joint_ci_low"], pr.loc[("P", "Q"), "kl_joint_ci_high"]
    assert 0 <= lo <= hi
    for fig in ("rates.png", "kl_heatmap.png", "kl_asymmetry.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "alpha = 0.5" in report and "mode: hard" in report and str(ann / "P") in report
    # 4 images each, every combination seen < 5 times: the joint values are stated but not read as a finding
    assert pr.loc[("P", "Q"), "joint_sparse_p"] == 1.0 and pr.loc[("P", "Q"), "joint_sparse_q"] == 1.0
    assert ("Joint KL over attribute combinations: not estimable from these samples — 100% of P's and 100% of Q's "
            "images have a combination seen fewer than 5 times") in report
    assert f"KL(P ‖ Q) = {KL_JOINT_PQ:.4f}, KL(Q ‖ P) = {KL_JOINT_QP:.4f} nats in kl_pairs.csv" in report
    assert "Attributes driving the divergence" in report
    assert (out / "DONE").exists()


def test_joint_kl_is_reported_as_a_finding_once_combinations_repeat(make_cfg, tmp_path):
    """The hand example with every row 5x: no combination is rare, so the report states the joint direction."""
    root = tmp_path / "annotations"
    write_annotation_dir(root / "P", "P", "real", ATTRS, [(_probs(P_ROWS * 5), None)])
    write_annotation_dir(root / "Q", "Q", "synthetic", ATTRS, [(_probs(Q_ROWS * 5), None)])
    res = run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.n_boot=0"], output_dir=tmp_path / "out"))
    pr = res["tables"].kl_pairs.set_index(["p", "q"])
    assert pr.loc[("P", "Q"), "joint_sparse_p"] == 0.0 and pr.loc[("P", "Q"), "joint_sparse_q"] == 0.0
    # smoothed joint on the union {000, 001, 010, 011}: P = (10, 5, 0, 5) + .5, Q = (5, 0, 15, 0) + .5, each / 22
    p = (np.array([10, 5, 0, 5]) + 0.5) / 22
    q = (np.array([5, 0, 15, 0]) + 0.5) / 22
    assert pr.loc[("P", "Q"), "kl_joint"] == pytest.approx(entropy(p, q), abs=1e-9)
    assert pr.loc[("Q", "P"), "kl_joint"] == pytest.approx(entropy(q, p), abs=1e-9)
    report = (res["output_dir"] / "report.md").read_text()
    big, small = ("P", "Q") if entropy(p, q) > entropy(q, p) else ("Q", "P")
    assert (f"Joint KL over attribute combinations: KL({big} ‖ {small}) = {max(entropy(p, q), entropy(q, p)):.4f} "
            "nats is larger than") in report
    assert "not estimable" not in report


def test_run_with_labels_csv_and_soft_mode(make_cfg, ann, tmp_path):
    labels = tmp_path / "targets" / "P" / "labels.csv"
    labels.parent.mkdir(parents=True)
    rows = ["path,identity,a,b,c"] + [f"x{i}.png,p{i % 2},{r[0]},{r[1]},{r[2]}" for i, r in enumerate(P_ROWS)]
    labels.write_text("\n".join(rows) + "\n")
    cfg = make_cfg("analyze", ["logger=none", f"inputs=[{ann / 'P'},{ann / 'Q'},{labels}]", "analyze.mode=soft",
                               "analyze.n_boot=0", "analyze.attributes=[a,c]", "analyze.alpha=1.0"])
    res = run(cfg)
    rates, kla, pairs = _read(res["output_dir"])
    assert set(rates.attribute) == {"a", "c"} and "ci_low" not in kla.columns
    r = rates.set_index(["dataset", "attribute"])
    assert r.loc[("P(labels)", "c"), "group"] == "real"  # inherited from the annotated dataset of the same name
    # soft mode: the rate is the mean probability (thresholds a=0.3 -> 0.25/0.35)
    assert r.loc[("P", "a"), "rate"] == pytest.approx(0.25, abs=1e-6)
    assert r.loc[("P(labels)", "a"), "rate"] == 0.0
    # pooled groups hold the MAC's view only: real(pooled) == P
    assert r.loc[("real(pooled)", "a"), "n"] == 4
    k = kla.set_index(["p", "q", "attribute"])["kl"]
    pp, qq = (0 + 1) / (4 + 2), (4 * 0.25 + 1) / (4 + 2)
    assert k[("P(labels)", "P", "a")] == pytest.approx(entropy([pp, 1 - pp], [qq, 1 - qq]), abs=1e-9)
    assert "MAC's view vs human labels" in (res["output_dir"] / "report.md").read_text()


def test_latest_and_config_errors(make_cfg, ann, tmp_path, monkeypatch):
    import shutil
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("FACEMAC_OUTPUTS", str(outputs))
    with pytest.raises(ConfigError, match="latest"):
        run(make_cfg("analyze", ["logger=none"], output_dir=tmp_path / "r0"))
    run_dir = outputs / "annotate" / "runs" / "2026-01-01"
    shutil.copytree(ann, run_dir / "annotations")
    (run_dir / "DONE").write_text("ok\n")
    res = run(make_cfg("analyze", ["logger=none", "analyze.n_boot=0"], output_dir=tmp_path / "r1"))
    assert res["datasets"][:2] == ["P", "Q"]
    with pytest.raises(ConfigError, match=r"attributes: \['zzz'\].*valid: \['a', 'b', 'c'\]"):
        run(make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.attributes=[a,zzz]"],
                     output_dir=tmp_path / "r2"))
    with pytest.raises(ConfigError, match="analyze.mode="):
        run(make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.mode=fuzzy"], output_dir=tmp_path / "r3"))
    with pytest.raises(ConfigError, match="needs logger=wandb"):
        run(make_cfg("analyze", ["logger=none", "inputs=[wandb:me/facemac/annotations:v3]"],
                     output_dir=tmp_path / "r5"))
    res = run(make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.n_boot=0", "analyze.groups={Q: real}",
                                   "analyze.joint_attributes=[]"], output_dir=tmp_path / "r6"))
    rates, _, pairs = _read(res["output_dir"])
    assert set(rates[rates.dataset == "Q"].group) == {"real"} and "real(pooled)" not in set(rates.dataset)
    assert pairs.kl_joint.isna().all() and pairs.kl_mean.notna().all()
    with pytest.raises(ConfigError, match="analyze.groups"):
        run(make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.groups={nope: real}"],
                     output_dir=tmp_path / "r4"))


def test_run_with_wandb_offline(make_cfg, ann, tmp_path):
    cfg = make_cfg("analyze", ["logger=wandb", f"annotations={ann}", "analyze.n_boot=5"])
    res = run(cfg)
    out = res["output_dir"]
    assert (out / "DONE").exists() and (out / "report.md").exists()
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_label_rule_counting_by_default_reporting_on_request_and_old_manifests_readable(make_cfg, tmp_path):
    """A manifest with both sets counts with counting_thresholds unless analyze.label_rule=reporting; a manifest from
    before the counting set (thresholds only) is still read, with its one set."""
    from facemac.annotation_table import threshold_fields

    root = tmp_path / "annotations"
    probs = np.array([[0.4, 0.9, 0.1], [0.4, 0.9, 0.1], [0.7, 0.2, 0.9], [0.7, 0.2, 0.9]], np.float32)
    write_annotation_dir(root / "P", "P", "real", ATTRS, [(probs, None)], thresholds={"a": 0.3, "b": 0.5, "c": 0.5},
                         extra=threshold_fields(ATTRS, [0.5, 0.5, 0.5], "accuracy"))
    write_annotation_dir(root / "Q", "Q", "synthetic", ATTRS, [(probs, None)],
                         thresholds={"a": 0.3, "b": 0.5, "c": 0.5})
    out = run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.n_boot=0"]))
    r = pd.read_csv(out["output_dir"] / "rates.csv").set_index(["dataset", "attribute"])["positives"]
    assert (r[("P", "a")], r[("Q", "a")]) == (2, 4)  # P: prob > 0.5 (counting); Q: prob > 0.3 (its only set)
    assert out["settings"]["label_rule"] == "counting"
    report = (out["output_dir"] / "report.md").read_text()
    assert "label rule: probability > the checkpoint's counting thresholds" in report
    out = run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.n_boot=0", "analyze.label_rule=reporting"],
                       tmp_path / "run2"))
    r = pd.read_csv(out["output_dir"] / "rates.csv").set_index(["dataset", "attribute"])["positives"]
    assert (r[("P", "a")], r[("Q", "a")]) == (4, 4)
    with pytest.raises(ConfigError, match="analyze.label_rule='best'"):
        run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.label_rule=best"], tmp_path / "r3"))



def test_a_malformed_counting_set_is_refused_naming_the_manifest(make_cfg, tmp_path):
    from facemac.errors import DataError

    root = tmp_path / "annotations"
    probs = np.full((2, 3), 0.5, np.float32)
    write_annotation_dir(root / "P", "P", "real", ATTRS, [(probs, None)],
                         extra={"counting_thresholds": {"a": 0.5}, "label_thresholds": "counting_thresholds"})
    with pytest.raises(DataError, match=r"P/manifest\.json: 'counting_thresholds' must give one threshold per"):
        run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.n_boot=0"]))
