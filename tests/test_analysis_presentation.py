"""What a reader sees (#22 items 10 and 13): no pooled section, series or heat-map row that repeats a dataset, named
points in kl_asymmetry.png, values in kl_heatmap.png, a joint KL that never dips below 0, and the headline as the
report's first line under its title and on the console."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

from facemac.analysis import run as analysis_run
from tests.annotation_fixtures import write_annotation_dir
from facemac.analysis.joint import _Support, fast_joint_kl

ATTRS = ["Male", "Young", "Smiling", "Eyeglasses", "Bald"]


def _table(root, name, group, rates, seed):
    rng = np.random.default_rng(seed)
    probs = (rng.random((300, len(ATTRS))) < np.array(rates)).astype(np.float32) * 0.8 + 0.1
    return write_annotation_dir(root / name, name, group, ATTRS, [(probs, [f"{name}{i % 30}" for i in range(300)])])


@pytest.fixture
def captured(monkeypatch):
    """The frames and pairs the figures get, and every text and annotation drawn on an axes."""
    seen = {"texts": [], "annotations": []}
    real = analysis_run.make_figures

    def spy(rates, kl, focus, folder):
        seen.update(rates=rates, focus=focus)
        return real(rates, kl, focus, folder)

    monkeypatch.setattr(analysis_run, "make_figures", spy)
    text, annotate = Axes.text, Axes.annotate
    monkeypatch.setattr(Axes, "text", lambda self, *a, **k: seen["texts"].append(a[2]) or text(self, *a, **k))
    monkeypatch.setattr(Axes, "annotate", lambda self, *a, **k: seen["annotations"].append(a[0])
                        or annotate(self, *a, **k))
    return seen


def test_one_dataset_per_group_shows_each_dataset_once(make_cfg, tmp_path, captured, caplog):
    real = _table(tmp_path, "real_a", "real", [0.5, 0.6, 0.5, 0.2, 0.1], 0)
    synth = _table(tmp_path, "synth_b", "synthetic", [0.5, 0.9, 0.3, 0.01, 0.02], 1)
    caplog.set_level("INFO")
    res = analysis_run.run(make_cfg("analyze", ["logger=none", f"inputs=[{real},{synth}]", "analyze.n_boot=0"]))
    out = res["output_dir"]
    assert captured["focus"] == [("real_a", "synth_b")]  # the pooled pair was the same pair twice
    assert sorted(set(captured["rates"].dataset)) == ["real_a", "synth_b"]
    report = (out / "report.md").read_text()
    assert "### real(pooled) vs synthetic(pooled)" not in report and "### real_a vs synth_b" in report
    assert "Not pooled here, because the group holds one dataset" in report
    rates = pd.read_csv(out / "rates.csv")  # the CSVs keep the pooled rows (their names are an interface)
    assert {"real(pooled)", "synthetic(pooled)"} <= set(rates.dataset)
    pairs = pd.read_csv(out / "kl_pairs.csv")
    own = pairs[(pairs.p == "real_a") & (pairs.q == "real(pooled)")]
    assert own.kl_joint.item() == 0.0 and (pairs.kl_joint >= 0).all()  # was -1.3e-15

    # the headline: first line under the title, and on the console; its numbers are the CSVs'
    lines = report.splitlines()
    assert lines[0] == "# Attribute divergence report" and lines[2] == f"**{res['headline']}**"
    kl = pd.read_csv(out / "kl_attributes.csv").set_index(["p", "q", "attribute"])["kl"].sort_index()
    both = kl.loc[("real_a", "synth_b")] + kl.loc[("synth_b", "real_a")]
    fwd = pairs[(pairs.p == "real_a") & (pairs.q == "synth_b")].kl_mean.item()
    bwd = pairs[(pairs.p == "synth_b") & (pairs.q == "real_a")].kl_mean.item()
    assert res["headline"].startswith(f"Headline: mean per-attribute KL(real_a ‖ synth_b) = {fwd:.4f} nats, "
                                      f"KL(synth_b ‖ real_a) = {bwd:.4f} nats; top driver {both.idxmax()} (")
    assert any(r.getMessage() == res["headline"] for r in caplog.records)

    # kl_heatmap.png: a value in every cell; kl_asymmetry.png: the largest points named by their attribute
    assert len([t for t in captured["texts"] if t == "0" or t.startswith(".") or t[:1].isdigit()]) == 2 * len(ATTRS)
    assert captured["annotations"][:3] == list(both.sort_values(ascending=False).index[:3])


def test_a_group_with_two_datasets_keeps_its_pool_the_other_shows_its_member(make_cfg, tmp_path, captured):
    a = _table(tmp_path, "real_a", "real", [0.5, 0.6, 0.5, 0.2, 0.1], 0)
    b = _table(tmp_path, "real_b", "real", [0.4, 0.5, 0.6, 0.3, 0.1], 2)
    s = _table(tmp_path, "synth_c", "synthetic", [0.5, 0.9, 0.3, 0.01, 0.02], 1)
    res = analysis_run.run(make_cfg("analyze", ["logger=none", f"inputs=[{a},{b},{s}]", "analyze.n_boot=0"]))
    assert captured["focus"][0] == ("real(pooled)", "synth_c")  # synthetic(pooled) = synth_c
    assert all("synthetic(pooled)" not in pair for pair in captured["focus"])
    assert "synthetic(pooled)" not in set(captured["rates"].dataset) and "real(pooled)" in set(captured["rates"].dataset)
    assert res["headline"].startswith("Headline: mean per-attribute KL(real(pooled) ‖ synth_c)")


def test_joint_kl_of_identical_counts_is_exactly_zero():
    """The sums fast_joint_kl cancels left -1e-15 for identical count vectors (61 of 300 random ones)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        c = rng.integers(0, 50, rng.integers(5, 400)).astype(float)
        c = c[c > 0]
        s = _Support(c, 0.5)
        kl_pq, cov, kl_qp, _ = fast_joint_kl(s, s, c, c, 0.5)
        assert kl_pq == kl_qp == 0.0 and cov == 1.0
