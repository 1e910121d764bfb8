"""Within-identity statistics: a hand example, an independent pandas/scipy oracle on random tables, the bootstrap,
the counting paths, skipped datasets, config, attribute levels, and the demo's planted truth on its labels."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from tests.annotation_fixtures import write_annotation_dir
from facemac.analysis.identity import CATEGORIES
from facemac.analysis.run import run
from facemac.attributes import ATTRIBUTE_LEVELS, CELEBA_ATTRIBUTES, MAADFACE_ATTRIBUTES, attribute_levels
from facemac.data.demo import DEMO_ATTRIBUTES, PROFILES, TARGET_NAMES
from facemac.data.demo.profiles import IDENTITY_ATTRIBUTES
from facemac.data.demo.sampling import sample_labels
from facemac.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _probs(labels: np.ndarray) -> np.ndarray:
    """0/1 labels -> probabilities on the right side of the 0.5 threshold."""
    return np.where(np.asarray(labels, bool), 0.8, 0.2).astype(np.float32)


def _analyze(make_cfg, tmp_path, inputs: str, *extra: str, name: str = "run"):
    cfg = make_cfg("analyze", ["logger=none", f"inputs=[{inputs}]", *extra], output_dir=tmp_path / name)
    res = run(cfg)
    out = res["output_dir"]
    return res, pd.read_csv(out / "identity_stats.csv"), pd.read_csv(out / "identity_compare.csv")


# ---------------------------------------------------------------- by hand


def test_hand_example(make_cfg, tmp_path):
    """Attribute a, dataset P: p1 = 1,1,0 (mixed, H(1/3) = 0.9183 bits, 'half'); p2 = 0,0 (not mixed, 'none');
    p3 has one image (not counted); two anonymous images (not counted). Q: q1 = 1,1,1,1 ('all'), q2 = 1,0,0,0
    (mixed, H(1/4) = 0.8113 bits, 'few'). Attribute b: constant 0 everywhere."""
    rows_p = [("p1", 1), ("p1", 1), ("p1", 0), ("p2", 0), ("p2", 0), ("p3", 1), (None, 1), (None, 0)]
    rows_q = [("q1", 1)] * 4 + [("q2", 1), ("q2", 0), ("q2", 0), ("q2", 0)]
    root = tmp_path / "ann"
    for name, group, rows in (("P", "real", rows_p), ("Q", "synthetic", rows_q)):
        labels = np.array([[v, 0] for _, v in rows])
        write_annotation_dir(root / name, name, group, ["a", "b"], [(_probs(labels), [i for i, _ in rows])])
    res, stats, compare = _analyze(make_cfg, tmp_path, f"{root / 'P'},{root / 'Q'}", "analyze.n_boot=0",
                                   "analyze.identity.levels={a: identity, b: image}")
    s = stats.set_index(["dataset", "attribute"])
    h13, h14 = 0.9182958340544896, 0.8112781244591328
    assert s.loc[("P", "a"), ["identities", "images"]].tolist() == [2, 5]
    assert s.loc[("P", "a"), "mixed_share"] == 0.5 and s.loc[("P", "a"), "mean_entropy"] == pytest.approx(h13 / 2)
    assert s.loc[("P", "a"), "share_none"] == 0.5 and s.loc[("P", "a"), "share_half"] == 0.5
    assert s.loc[("Q", "a"), "mixed_share"] == 0.5 and s.loc[("Q", "a"), "mean_entropy"] == pytest.approx(h14 / 2)
    assert s.loc[("Q", "a"), "share_all"] == 0.5 and s.loc[("Q", "a"), "share_few"] == 0.5
    assert s.loc[("P", "b"), "mixed_share"] == 0 and s.loc[("P", "a"), "level"] == "identity"
    assert s.loc[("P", "b"), "level"] == "image" and s.loc[("P", "a"), "group"] == "real"
    # pooled groups hold their members' identities: one member each here
    assert s.loc[("real(pooled)", "a"), "mean_entropy"] == pytest.approx(h13 / 2)
    assert s.loc[("P", "a"), ["ci_low", "ci_high"]].isna().all()  # no bootstrap
    c = compare.set_index(["p", "q", "attribute"])
    row = c.loc[("P", "Q", "a")]
    assert row.mixed_share_q_minus_p == 0.0 and row.entropy_q_minus_p == pytest.approx((h14 - h13) / 2)
    # JS between (none, few, half, most, all) = (1/2, 0, 1/2, 0, 0) and (0, 1/2, 0, 0, 1/2): disjoint, ln 2
    assert row.js_identity_rates == pytest.approx(np.log(2))
    assert list(compare.columns[:4]) == ["p", "q", "group_p", "group_q"]
    report = (res["output_dir"] / "report.md").read_text()
    assert "## Within identities" in report and "| P | 2 | 5 |" in report


# ---------------------------------------------------------------- independent oracle


def _random_dataset(rng, n_ids: int, attrs: int, anonymous: int, soft_rate: float) -> pd.DataFrame:
    """Identities with 1-6 images, per-identity attribute propensities, some anonymous rows."""
    rows = []
    for i in range(n_ids):
        prop = rng.beta(0.4, 0.4, attrs) * soft_rate
        for _ in range(rng.integers(1, 7)):
            rows.append((f"id{i:03d}", *(rng.random(attrs) < prop)))
    rows += [(None, *(rng.random(attrs) < 0.5)) for _ in range(anonymous)]
    frame = pd.DataFrame(rows, columns=["identity", *(f"x{j}" for j in range(attrs))])
    return frame.sample(frac=1.0, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)


def _oracle(frame: pd.DataFrame, attrs: list[str]) -> pd.DataFrame:
    """Per attribute, straight from a pandas groupby and scipy's entropy."""
    out = []
    named = frame.dropna(subset=["identity"])
    for a in attrs:
        g = named.groupby("identity")[a].agg(["size", "sum"])
        g = g[g["size"] >= 2]
        rate = g["sum"] / g["size"]
        h = [entropy([r, 1 - r], base=2) for r in rate]
        cats = np.histogram(rate, bins=[-0.5, 1e-12, 1 / 3 - 1e-12, 2 / 3 + 1e-12, 1 - 1e-12, 1.5])[0] / len(g)
        out.append({"attribute": a, "identities": len(g), "images": int(g["size"].sum()),
                    "mixed_share": float(((rate > 0) & (rate < 1)).mean()), "mean_entropy": float(np.mean(h)),
                    **{f"share_{c}": cats[k] for k, c in enumerate(CATEGORIES)}})
    return pd.DataFrame(out).set_index("attribute")


@pytest.mark.parametrize("extra", [["analyze.n_boot=0"], ["analyze.n_boot=30"], ["analyze.mode=soft", "analyze.n_boot=30"],
                                   ["analyze.rows_per_batch=7", "analyze.n_boot=0"]])
def test_statistics_match_a_pandas_oracle(make_cfg, tmp_path, extra):
    """Shared (hard, bootstrap on) and own (n_boot=0, soft mode) counting paths and any batch size give the oracle."""
    rng = np.random.default_rng(4)
    attrs = [f"x{j}" for j in range(5)]
    frames = {"R": _random_dataset(rng, 60, 5, 25, 1.0), "S": _random_dataset(rng, 45, 5, 0, 0.5)}
    root = tmp_path / "ann"
    for name, frame in frames.items():
        write_annotation_dir(root / name, name, "real" if name == "R" else "synthetic", attrs,
                             [(_probs(frame[attrs].to_numpy()), [i if isinstance(i, str) else None
                                                                 for i in frame["identity"]])])
    _, stats, compare = _analyze(make_cfg, tmp_path, f"{root / 'R'},{root / 'S'}", *extra)
    for name, frame in frames.items():
        got = stats[stats.dataset == name].set_index("attribute")
        want = _oracle(frame, attrs)
        for col in want.columns:
            assert np.allclose(got[col].to_numpy(float), want[col].to_numpy(float), atol=1e-12), (name, col)
    pooled = stats[stats.dataset == "real(pooled)"].set_index("attribute")
    assert np.allclose(pooled.mixed_share, _oracle(frames["R"], attrs).mixed_share)
    c = compare[(compare.p == "R") & (compare.q == "S")].set_index("attribute")
    r, s = _oracle(frames["R"], attrs), _oracle(frames["S"], attrs)
    assert np.allclose(c.mixed_share_q_minus_p, s.mixed_share - r.mixed_share, atol=1e-12)
    shares = [f"share_{k}" for k in CATEGORIES]
    js = [jensenshannon(r.loc[a, shares].to_numpy(float), s.loc[a, shares].to_numpy(float)) ** 2 for a in attrs]
    assert np.allclose(c.js_identity_rates, js, atol=1e-12)
    if "analyze.n_boot=30" in extra:
        assert (stats.ci_low <= stats.mixed_share + 1e-12).all() and (stats.mixed_share <= stats.ci_high + 1e-12).all()
        assert (c.js_ci_low <= c.js_ci_high).all() and (c.mixed_ci_low <= c.mixed_ci_high).all()
    else:
        assert stats.ci_low.isna().all()


def test_identity_bootstrap_matches_the_binomial_spread(make_cfg, tmp_path):
    """400 identities, each mixed with probability 0.3: the 95 % interval spans about 2 x 1.96 x sqrt(.3 x .7 / 400)."""
    rng = np.random.default_rng(7)
    mixed = rng.random(400) < 0.3
    labels = np.concatenate([[1, 0, 0, 0] if m else [0, 0, 0, 0] for m in mixed])[:, None]
    ids = [f"i{k}" for k in range(400) for _ in range(4)]
    root = tmp_path / "ann"
    write_annotation_dir(root / "R", "R", "real", ["a"], [(_probs(labels), ids)])
    _, stats, _ = _analyze(make_cfg, tmp_path, f"{root / 'R'}", "analyze.n_boot=400")
    row = stats.iloc[0]
    assert row.mixed_share == pytest.approx(mixed.mean())
    width = 2 * 1.96 * np.sqrt(0.3 * 0.7 / 400)
    assert row.ci_high - row.ci_low == pytest.approx(width, rel=0.2)
    assert row.ci_low < row.mixed_share < row.ci_high


def test_masked_labels_count_per_attribute(make_cfg, tmp_path):
    """labels.csv: an empty or -1 cell is unknown, so an identity counts for an attribute only with >= 2 labels of it."""
    csv = tmp_path / "t" / "labels.csv"
    csv.parent.mkdir()
    csv.write_text("path,identity,a,b\nx0,i1,1,\nx1,i1,0,1\nx2,i2,1,-1\nx3,i2,1,0\nx4,i3,0,1\nx5,i3,0,1\n")
    _, stats, _ = _analyze(make_cfg, tmp_path, f"{{path: {csv}, name: t, group: real}}", "analyze.n_boot=0")
    s = stats.set_index("attribute")
    assert s.loc["a", "identities"] == 3 and s.loc["a", "mixed_share"] == pytest.approx(1 / 3)
    assert s.loc["b", "identities"] == 1 and s.loc["b", "images"] == 2 and s.loc["b", "mixed_share"] == 0


def test_datasets_without_identities_are_skipped_by_name(make_cfg, tmp_path):
    root = tmp_path / "ann"
    rng = np.random.default_rng(0)
    write_annotation_dir(root / "anon", "anon", "real", ["a"], [(rng.random((20, 1)), None)])
    write_annotation_dir(root / "single", "single", "real", ["a"], [(rng.random((5, 1)), list("abcde"))])
    write_annotation_dir(root / "S", "S", "synthetic", ["a"], [(rng.random((20, 1)), [f"s{i % 5}" for i in range(20)])])
    res, stats, compare = _analyze(make_cfg, tmp_path, f"{root / 'anon'},{root / 'single'},{root / 'S'}",
                                   "analyze.n_boot=5")
    assert set(stats.dataset) == {"S", "synthetic(pooled)"} and len(compare) == 0
    assert res["identity"].skipped == {"anon": "no identities", "single": "no identity with >= 2 images",
                                       "real(pooled)": "no member has identities"}
    report = (res["output_dir"] / "report.md").read_text()
    assert "Skipped: anon (no identities); single (no identity with >= 2 images)" in report
    assert (res["output_dir"] / "figures" / "identity_mixed.png").is_file()
    # nothing with identities at all: the CSVs exist with their header, no figure, one sentence, no error
    res, stats, compare = _analyze(make_cfg, tmp_path, f"{root / 'anon'}", "analyze.n_boot=0", name="none")
    assert len(stats) == 0 and "mixed_share" in stats.columns and "js_identity_rates" in compare.columns
    assert not (res["output_dir"] / "figures" / "identity_mixed.png").exists()
    assert "No dataset has identities with enough images." in (res["output_dir"] / "report.md").read_text()


def test_identity_config(make_cfg, tmp_path):
    root = tmp_path / "ann"
    write_annotation_dir(root / "R", "R", "real", ["Male", "Smiling", "zz"],
                         [(np.random.default_rng(1).random((12, 3)), [f"i{k % 4}" for k in range(12)])])
    res, stats, _ = _analyze(make_cfg, tmp_path, f"{root / 'R'}", "analyze.n_boot=0", "analyze.identity.min_images=3",
                             "analyze.identity.levels={Smiling: identity}")
    levels = stats.set_index("attribute").level
    assert levels.to_dict() == {"Male": "identity", "Smiling": "identity", "zz": "unclassified"}
    assert (stats.identities == 4).all()
    assert "Unclassified attributes" in (res["output_dir"] / "report.md").read_text()
    off = run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.identity.enabled=false"],
                       output_dir=tmp_path / "off"))
    assert off["identity"] is None and not (off["output_dir"] / "identity_stats.csv").exists()
    with pytest.raises(ConfigError, match="analyze.identity.levels"):
        run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.identity.levels={Male: person}"],
                     output_dir=tmp_path / "bad"))
    with pytest.raises(ConfigError, match="analyze.identity.min_images"):
        run(make_cfg("analyze", ["logger=none", f"annotations={root}", "analyze.identity.min_images=1"],
                     output_dir=tmp_path / "bad2"))


# ---------------------------------------------------------------- attribute levels


def test_every_known_attribute_is_classed_and_documented():
    assert set(CELEBA_ATTRIBUTES) | set(MAADFACE_ATTRIBUTES) == set(ATTRIBUTE_LEVELS)
    assert all(level in ("identity", "image") and why for level, why in ATTRIBUTE_LEVELS.values())
    # the demo's sampling model fixes exactly the attributes the defaults call identity-level
    levels = attribute_levels(list(DEMO_ATTRIBUTES))
    assert {a for a, v in levels.items() if v == "identity"} == set(IDENTITY_ATTRIBUTES)
    # docs/analyze.md lists every attribute with the same level
    docs = (ROOT / "docs" / "analyze.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| (identity|image) \|", docs, flags=re.M))
    assert table == {a: v for a, (v, _) in ATTRIBUTE_LEVELS.items()}
    with pytest.raises(ValueError, match="person"):
        attribute_levels(["Male"], {"Male": "person"})


# ---------------------------------------------------------------- the demo's planted truth


def test_planted_values_recovered_from_ground_truth_labels(make_cfg, tmp_path):
    """labels.csv files as the demo writes them (sample_labels equals them, tested in test_demo), 600 identities x 8
    images per target, through the whole analysis: every mixed share and mean entropy within sampling error of the
    exact truth, every planted real/synthetic difference found."""
    inputs = []
    for name in TARGET_NAMES:
        labels, ids = sample_labels(PROFILES[name], seed=0, identities=600, images=8)
        frame = pd.DataFrame(labels, columns=DEMO_ATTRIBUTES)
        frame.insert(0, "identity", [f"id{i:05d}" for i in ids])
        frame.insert(0, "path", [f"{i}/{k}.jpg" for k, i in enumerate(ids)])
        (tmp_path / name).mkdir()
        frame.to_csv(tmp_path / name / "labels.csv", index=False)
        inputs.append(f"{{path: {tmp_path / name / 'labels.csv'}, name: {name}, group: {PROFILES[name].group}}}")
    _, stats, compare = _analyze(make_cfg, tmp_path, ",".join(inputs), "analyze.n_boot=200",
                                 "analyze.joint_attributes=[]")
    for r in stats[stats.dataset.isin(TARGET_NAMES)].itertuples():
        true_mixed, true_entropy = PROFILES[r.dataset].within_identity(8)[r.attribute]
        assert abs(r.mixed_share - true_mixed) <= 4 * np.sqrt(true_mixed * (1 - true_mixed) / 600) + 0.005, \
            (r.dataset, r.attribute, r.mixed_share, true_mixed)
        assert r.mean_entropy == pytest.approx(true_entropy, abs=0.07), (r.dataset, r.attribute)
        assert r.ci_low <= r.mixed_share <= r.ci_high
    # every planted real/synthetic difference of at least 10 points shows, with an interval excluding zero
    planted = 0
    for r in compare[(compare.group_p == "real") & (compare.group_q == "synthetic")].itertuples():
        if r.p in TARGET_NAMES:
            true = PROFILES[r.q].within_identity(8)[r.attribute][0] - PROFILES[r.p].within_identity(8)[r.attribute][0]
            if abs(true) >= 0.1:
                planted += 1
                assert (r.mixed_ci_low > 0) if true > 0 else (r.mixed_ci_high < 0), (r.p, r.q, r.attribute, true)
    assert planted >= 40
