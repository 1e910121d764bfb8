"""Corrected (audited, prediction-powered) rates: ppi-python as the oracle for a simple random sample, a hand
computation for strata and weights, every bad audit refused in one line, and a seeded coverage simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

from facemac.analysis.correction.audit import AuditRows, audit_delta
from facemac.analysis.correction.engine import AuditCorrection, correct_rates
from facemac.analysis.run import run
from facemac.errors import ConfigError, DataError
from tests.annotation_fixtures import write_annotation_dir

ATTRS = ["a", "b", "c"]


def _rows(mac, truth, judged=None, stratum=None, sizes=None, weights=None):
    mac, truth = np.asarray(mac, float), np.asarray(truth, float)
    judged = np.ones(mac.shape, bool) if judged is None else np.asarray(judged, bool)
    if stratum is not None:
        sizes = np.asarray(sizes, float)
        return AuditRows("d", None, mac, truth, judged, np.asarray(stratum), sizes / sizes.sum(), None, "stratified")
    zero = np.zeros(len(mac), np.int64)
    return AuditRows("d", None, mac, truth, judged, zero, np.ones(1), None if weights is None else np.asarray(weights),
                     "simple" if weights is None else "weighted")


def test_simple_random_sample_matches_ppi_python():
    rng = np.random.default_rng(3)
    big, small = 5000, 300
    truth_all = rng.random((big, 2)) < [0.1, 0.6]
    flip = rng.random((big, 2)) < [0.2, 0.1]
    mac_all = (truth_all ^ flip).astype(float)
    audit = rng.choice(big, small, replace=False)
    rows = _rows(mac_all[audit], truth_all[audit].astype(float))
    n = np.full((1, 2), float(big))
    plain_corr = AuditCorrection(rows, tune=False)
    plain = correct_rates(n, mac_all.sum(0, keepdims=True), [plain_corr], [], 0.9, 0)
    tuned_corr = AuditCorrection(rows)
    tuned = correct_rates(n, mac_all.sum(0, keepdims=True), [tuned_corr], [], 0.9, 0)
    for j in range(2):
        y, yhat, unl = truth_all[audit, j].astype(float), mac_all[audit, j], mac_all[:, j]
        ref = float(np.ravel(ppi_mean_pointestimate(y, yhat, unl, lam=1))[0])
        lo, hi = (float(np.ravel(v)[0]) for v in ppi_mean_ci(y, yhat, unl, alpha=0.1, lam=1))
        assert plain_corr.raw_point[j] == pytest.approx(ref, abs=1e-12)
        assert plain.rate[0, j] == pytest.approx(ref, abs=1e-6)  # the boundary rule moves an interior rate by ~0
        assert (plain.low[0, j], plain.high[0, j]) == pytest.approx((lo, hi), abs=1e-9)
        assert plain.method == ["audit"] and plain.counted[0, j] == pytest.approx(unl.mean())
        # PPI++ (power-tuned): our lambda is ppi-python's up to its variance pooling; the estimate at our lambda is
        # ppi-python's at the same lambda, and the interval is ppi-python's tuned one to within its lambda's noise
        lam = float(tuned_corr.lam[j])
        assert 0 < lam < 1
        assert tuned_corr.raw_point[j] == pytest.approx(
            float(np.ravel(ppi_mean_pointestimate(y, yhat, unl, lam=lam))[0]), abs=1e-12)
        t_lo, t_hi = (float(np.ravel(v)[0]) for v in ppi_mean_ci(y, yhat, unl, alpha=0.1))
        assert (tuned.low[0, j], tuned.high[0, j]) == pytest.approx((t_lo, t_hi), abs=2e-3)
        assert tuned.high[0, j] - tuned.low[0, j] < plain.high[0, j] - plain.low[0, j]


def test_stratified_and_weighted_by_hand():
    # two strata of sizes 900 and 100; attribute 0: stratum 0 rows d = 0, -1 ; stratum 1 rows d = +1, +1, 0
    mac = [[1], [1], [0], [0], [0]]
    truth = [[1], [0], [1], [1], [0]]
    rows = _rows(mac, truth, stratum=[0, 0, 1, 1, 1], sizes=[900, 100])
    assert audit_delta(rows)[0] == pytest.approx(0.9 * (-0.5) + 0.1 * (2 / 3))
    # a stratum without any judgement of the attribute drops out, the others renormalised
    judged = [[True], [True], [False], [False], [False]]
    assert audit_delta(_rows(mac, truth, judged, [0, 0, 1, 1, 1], [900, 100]))[0] == pytest.approx(-0.5)
    # Hajek: sum w d / sum w over the judged rows
    w = [1.0, 3.0, 2.0, 2.0, 2.0]
    d = np.array(truth, float)[:, 0] - np.array(mac, float)[:, 0]
    assert audit_delta(_rows(mac, truth, weights=w))[0] == pytest.approx((np.array(w) * d).sum() / sum(w))


def test_a_rare_attribute_the_audit_never_sees_gets_a_small_positive_rate():
    """The MAC counts 1 %, 300 audited faces hold 3 MAC positives all judged negative: the unconstrained estimate is
    0, which would make KL against it explode; the posterior mean under a flat prior is small and positive, and the
    interval still reaches 0."""
    from facemac.analysis.bootstrap import draw_counts

    mac = np.zeros((300, 1))
    mac[:3] = 1
    corr = AuditCorrection(_rows(mac, np.zeros((300, 1))), tune=False)
    rng = np.random.default_rng(0)
    rep_pos = (draw_counts(rng, np.ones(2000), 200) @ (np.arange(2000) < 20).astype(float))[:, None, None]
    res = correct_rates(np.array([[2000.0]]), np.array([[20.0]]), [corr], [], 0.95, 0,
                        np.full_like(rep_pos, 2000.0), rep_pos)
    assert corr.raw_point[0] == pytest.approx(0.0, abs=1e-12)
    assert 0.0005 < res.rate[0, 0] < 0.01 and res.low[0, 0] == 0.0 and res.rate[0, 0] <= res.high[0, 0]


def test_pooled_rate_is_size_weighted_corrected_members():
    rows = _rows(np.repeat([[1], [0]], 100, 0), np.zeros((200, 1)))  # delta = -0.5
    n = np.array([[1000.0], [300.0]])
    res = correct_rates(n, np.array([[600.0], [30.0]]), [AuditCorrection(rows, tune=False), None], [[0, 1]], 0.95, 0)
    assert res.rate[0, 0] == pytest.approx(0.1, abs=1e-3) and res.rate[1, 0] == pytest.approx(0.1)
    assert res.rate[2, 0] == pytest.approx((res.rate[0, 0] * 1000 + 0.1 * 300) / 1300)
    assert res.method == ["audit", "none", "audit+none"]


def _coverage(with_audit: bool, seeds: int = 200) -> float:
    """Share of 95 % intervals covering the true rate, per seed: a population of 4000 faces in 400 identities whose
    attribute is an identity trait plus noise, a MAC with known error rates (false positives 0.15, misses 0.25),
    a 300-face simple random audit, 200 identity-bootstrap replicates (the analysis' own resampling)."""
    from facemac.analysis.bootstrap import draw_counts

    hits = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ids = np.repeat(np.arange(400), 10)
        trait = rng.random(400) < 0.3
        truth = np.where(rng.random(4000) < 0.9, trait[ids], rng.random(4000) < 0.3)
        mac = np.where(truth, rng.random(4000) > 0.25, rng.random(4000) < 0.15).astype(float)
        true_rate = 0.3 * 0.9 + 0.1 * 0.3  # the population rate the sample is drawn from
        w = draw_counts(rng, np.ones(400), 200)
        s_id = np.bincount(ids, mac, 400)
        rep_pos = (w @ s_id)[:, None, None]
        rep_n = np.full_like(rep_pos, 4000.0)
        corr, shared = None, None
        if with_audit:
            a = rng.choice(4000, 300, replace=False)
            corr = AuditCorrection(_rows(mac[a, None], truth[a, None].astype(float)))
            shared = {0: w[:, ids[a]]}  # audited faces move with their identities (as tables.py asks bootstrap)
        res = correct_rates(np.array([[4000.0]]), np.array([[mac.sum()]]), [corr], [], 0.95, seed, rep_n, rep_pos,
                            shared)
        hits.append(res.low[0, 0] <= true_rate <= res.high[0, 0])
    return float(np.mean(hits))


def test_rate_intervals_cover_at_known_error_rates():
    """With an audit ~95 % (seeded, 200 populations; the bootstrap sd matches the sd across populations, 0.031 vs
    0.032); counting alone misses the true rate almost always."""
    with_audit = _coverage(True)
    assert 0.90 <= with_audit <= 0.98, with_audit  # measured 0.935 (200 seeds); 0.92-0.93 over 600
    assert _coverage(False, 50) < 0.2


# ---- through run(): the audit folder, its refusals -------------------------------------------------------------

def _probs(labels):
    return np.where(np.asarray(labels, bool), 0.9, 0.1).astype(np.float32)


@pytest.fixture
def ann(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "annotations"
    truth = {}
    for name, group in (("P", "real"), ("Q", "synthetic")):
        t = rng.random((400, 3)) < [0.2, 0.5, 0.05]
        mac = t ^ (rng.random((400, 3)) < 0.15)
        write_annotation_dir(root / name, name, group, ATTRS, [(_probs(mac), [f"{name}{i // 4}" for i in range(400)])])
        truth[name] = (t, mac)
    return root, truth


def _write_audit(folder, name, truth, rows, **extra_cols):
    folder.mkdir(exist_ok=True)
    t = truth[name][0]
    frame = pd.DataFrame({"path": [f"{name}/{i:08d}.jpg" for i in rows]})
    for j, a in enumerate(ATTRS):
        frame[a] = t[rows, j].astype(int)
    for k, v in extra_cols.items():
        frame[k] = v
    frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_run_with_audit_folder(make_cfg, ann, tmp_path):
    root, truth = ann
    rows = np.arange(0, 400, 2)
    audit = _write_audit(tmp_path / "audit", "P", truth, rows)
    out = tmp_path / "out"
    run(make_cfg("analyze", ["logger=none", f"annotations={root}", f"analyze.audit={audit}", "analyze.n_boot=30",
                             "analyze.audit_power_tuning=false"], output_dir=out))
    rates = pd.read_csv(out / "rates.csv").set_index(["dataset", "attribute"])
    t, mac = truth["P"]
    for j, a in enumerate(ATTRS):
        expect = mac[:, j].mean() + (t[rows, j].astype(float) - mac[rows, j]).mean()
        # the unconstrained PPI estimate, up to the boundary rule (posterior mean on [0, 1]; c's rate is ~0.05)
        assert rates.loc[("P", a), "rate"] == pytest.approx(np.clip(expect, 0, 1), abs=2e-3)
        assert rates.loc[("P", a), "rate_counted"] == pytest.approx(mac[:, j].mean())
        assert rates.loc[("Q", a), "rate"] == pytest.approx(truth["Q"][1][:, j].mean())
    assert set(rates.loc["P"].correction) == {"audit"} and set(rates.loc["Q"].correction) == {"none"}
    assert set(rates.loc["real(pooled)"].correction) == {"audit"}
    kla = pd.read_csv(out / "kl_attributes.csv")
    assert set(kla[(kla.p == "P") & (kla.q == "Q")].correction) == {"audit/none"}
    assert "audit" in (out / "report.md").read_text()


@pytest.mark.parametrize("case, error, needle", [
    ("stray_path", DataError, "is not a face of the annotation"),
    ("unknown_attribute", DataError, "neither audit columns"),
    ("bad_value", DataError, "is not a judgement"),
    ("not_an_input", ConfigError, "not an input of this analysis"),
    ("unfilled", DataError, "unfilled template"),
    ("ignored", ConfigError, "would be ignored"),
])
def test_bad_audits_are_refused(make_cfg, ann, tmp_path, case, error, needle):
    root, truth = ann
    folder = tmp_path / "audit"
    _write_audit(folder, "P", truth, np.arange(10))
    frame = pd.read_csv(folder / "P.csv", dtype=str, keep_default_na=False)
    extra = []
    if case == "stray_path":
        frame.loc[3, "path"] = "elsewhere/x.jpg"
    elif case == "unknown_attribute":
        frame["Goatee"] = "1"
    elif case == "bad_value":
        frame.loc[2, "b"] = "yes"
    elif case == "not_an_input":
        frame.to_csv(folder / "R.csv", index=False)
    elif case == "unfilled":
        frame[ATTRS] = ""
    elif case == "ignored":
        extra = ["analyze.correction=none"]
    frame.to_csv(folder / "P.csv", index=False)
    out = tmp_path / "out"
    with pytest.raises(error, match=needle) as info:
        run(make_cfg("analyze", ["logger=none", f"annotations={root}", f"analyze.audit={folder}", *extra],
                     output_dir=out))
    assert "\n" not in str(info.value)
    assert not (out / "rates.csv").exists()  # nothing half-written


def test_report_marks_drivers_classified_at_chance_and_says_what_it_assumed(make_cfg, ann, tmp_path):
    """Validation predictions in both tables (attribute c at chance there): the report puts the balanced accuracy
    beside every driver, flags c, and states the no-audit assumption or why the counts were kept."""
    from facemac.annotation_table import VALIDATION_KEY, read_manifest, write_manifest, write_validation

    root, _ = ann
    rng = np.random.default_rng(5)
    labels = (rng.random((600, 3)) < [0.2, 0.5, 0.3]).astype(np.int8)
    mac = labels.astype(bool) ^ (rng.random((600, 3)) < 0.15)
    probs = _probs(mac)
    probs[:, 2] = rng.random(600)  # c: the MAC's probability says nothing about the label
    for name in ("P", "Q"):
        m = read_manifest(root / name)
        m[VALIDATION_KEY] = write_validation(root / name, np.arange(600) // 4, labels, probs, ATTRS)
        write_manifest(root / name, m)
    out = tmp_path / "out"
    res = run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.n_boot=30"], output_dir=out))
    report = (out / "report.md").read_text()
    assert "## Corrections and the MAC's quality" in report
    assert "as on its validation split" in report or "unlike on validation" in report
    row = next(line for line in report.splitlines() if line.startswith("| c |"))
    assert "classified at chance" in row, row
    assert not any("classified at chance" in line for line in report.splitlines() if line.startswith("| a |"))
    assert set(res["tables"].rates.correction) <= {"validation", "none", "validation+none", "none+validation"}


def test_older_tables_show_the_checkpoints_validation_metrics_from_the_manifest(make_cfg, tmp_path):
    """No validation.parquet: the balanced accuracy comes from the manifest's mac_validation_metrics (written by
    annotate from the checkpoint's metrics), and an attribute at chance there is flagged."""
    from facemac.annotation.inference import _val_quality

    metrics = {"metrics": {"val": {"per_attribute": {"a": {"balanced_accuracy": 0.95, "accuracy": 0.96},
                                                     "b": {"balanced_accuracy": 0.9, "accuracy": 0.9},
                                                     "c": {"balanced_accuracy": 0.55, "accuracy": 0.7}}}}}
    quality = _val_quality(metrics)
    assert quality["c"] == {"balanced_accuracy": 0.55, "accuracy": 0.7} and _val_quality({"metrics": {}}) is None
    rng = np.random.default_rng(1)
    root = tmp_path / "annotations"
    for name, group, rate in (("P", "real", [0.2, 0.5, 0.6]), ("Q", "synthetic", [0.6, 0.5, 0.05])):
        write_annotation_dir(root / name, name, group, ATTRS, [(_probs(rng.random((300, 3)) < rate), None)],
                             extra={"mac_validation_metrics": quality})
    out = tmp_path / "out"
    run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.n_boot=0"], output_dir=out))
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| c |"))
    assert "| 0.55 |" in row and "classified at chance" in row, row
    assert "| 0.95 |" in next(line for line in report.splitlines() if line.startswith("| a |"))


@pytest.mark.parametrize("extra", [["analyze.n_boot=0"], ["analyze.mode=soft", "analyze.n_boot=20"],
                                   ["analyze.audit_power_tuning=false", "analyze.pooled=false", "analyze.n_boot=20"]])
def test_audits_work_in_every_mode(make_cfg, ann, tmp_path, extra):
    """Normal intervals without bootstrap, soft mode (the MAC's probabilities are what the audit corrects), no pooling:
    every corrected rate inside [0, 1] and inside its own interval."""
    root, truth = ann
    audit = _write_audit(tmp_path / "audit", "P", truth, np.arange(0, 400, 3))
    res = run(make_cfg("analyze", ["logger=none", f"annotations={root}", f"analyze.audit={audit}", *extra],
                       output_dir=tmp_path / "out"))
    rates = res["tables"].rates
    p = rates[rates.dataset == "P"]
    assert (p.correction == "audit").all() and p.rate.between(0, 1).all()
    assert ((p.ci_low <= p.rate + 1e-12) & (p.rate <= p.ci_high + 1e-12)).all(), p
