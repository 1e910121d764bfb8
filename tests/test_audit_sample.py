"""The audit sampler and the simulated person: rare attributes get positives, the design is recorded, estimates from a
sampled-then-filled template are unbiased (seeded simulation), and the simulated person leaves blanks blank."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facemac.audit.format import read_audit
from facemac.audit.sample import (REST, draw_sample, read_rows, sqrt_allocation, stratified_rate, write_sample)
from facemac.audit.simulate import read_truth, simulate_audits, simulate_fill
from facemac.errors import ConfigError, DataError
from tests.annotation_fixtures import write_annotation_dir

ATTRS = ["Bald", "Goatee", "Smiling", "Young"]
RATES = [0.004, 0.03, 0.35, 0.97]   # true rates: two rare positives, one common, one rare negative
N = 6000


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """A dataset whose true labels are known; the 'MAC' errs on ~10 % of the cells (more false positives on rare)."""
    rng = np.random.default_rng(7)
    truth = (rng.random((N, len(ATTRS))) < RATES).astype(np.int8)
    flip = rng.random(truth.shape) < np.where(truth == 1, 0.15, 0.05)
    mac = np.where(flip, 1 - truth, truth)
    probs = np.clip(np.where(mac == 1, 0.8, 0.2) + rng.normal(0, 0.05, truth.shape), 0, 1).astype(np.float32)
    ids = [f"id{i // 5:04d}" for i in range(N)]
    base = tmp_path_factory.mktemp("pop")
    table = write_annotation_dir(base / "annotations" / "syn", "syn", "synthetic", ATTRS,
                                 [(probs[:3000], ids[:3000]), (probs[3000:], ids[3000:])])
    paths = [f"syn/{i:08d}.jpg" for i in range(N)]
    frame = pd.DataFrame({"path": paths, "identity": ids, **{a: truth[:, j] for j, a in enumerate(ATTRS)}})
    labels = base / "labels.csv"
    frame.to_csv(labels, index=False)
    return table, labels, truth, mac


def test_allocation_is_square_root_with_at_least_one_each():
    alloc = sqrt_allocation({"a": 10000, "b": 100, "c": 1, "rest": 40000}, 300)
    assert sum(alloc.values()) == 300 and alloc["c"] == 1
    assert alloc["rest"] / alloc["a"] == pytest.approx(2.0, rel=0.05)  # √4 = 2
    assert sqrt_allocation({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}  # a census when asked for more than there is
    with pytest.raises(ConfigError, match="audit.size"):
        sqrt_allocation({"a": 5, "b": 5, "c": 5}, 2)


def test_rare_attributes_get_positives_and_the_design_is_recorded(population, tmp_path):
    table, _, _, mac = population
    rows = read_rows(table)
    s = draw_sample(rows, 200, seed=3, rare=3)
    assert len(s.paths) == 200 and len(set(s.paths)) == 200
    assert set(s.strata) == {"Bald=1", "Young=0", "Goatee=1", REST}  # rarest first: Bald, Young's negatives, Goatee
    for name in set(s.strata):
        assert s.strata.count(name) >= 1 and s.design.strata[name]["sampled"] == s.strata.count(name)
    assert sum(v["size"] for v in s.design.strata.values()) == N
    # the MAC's Bald positives (~1.2 % of the faces, ~2 in a simple random sample of 200) get a stratum of their own
    assert s.mac_labels[:, 0].sum() >= 10
    again = draw_sample(read_rows(table), 200, seed=3, rare=3)
    assert again.paths == s.paths and draw_sample(rows, 200, seed=4, rare=3).paths != s.paths
    path = write_sample(s, tmp_path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["path", "identity", "stratum", "stratum_size", "weight", *ATTRS]
    assert (frame[ATTRS] == "").all().all()
    w = frame["weight"].astype(float)
    assert w.sum() == pytest.approx(N)
    assert (tmp_path / "syn.json").is_file()
    with pytest.raises(DataError, match="unfilled template"):
        read_audit(path, "syn", ATTRS, known_paths=set(rows.paths), num_images=N)


def test_stratified_estimates_from_filled_samples_are_unbiased(population, tmp_path):
    """Seeded simulation: mean over 150 draws of the stratified estimate within 3 standard errors of the true rate of
    the dataset, for every attribute, with 10 % of the cells left blank by the person."""
    table, labels, truth, _ = population
    rows, known = read_rows(table), read_truth(labels)
    true_rate = truth.mean(axis=0)
    est = []
    for seed in range(150):
        path = write_sample(draw_sample(rows, 120, seed=seed, rare=3), tmp_path)
        simulate_fill(path, known, blank=0.1, seed=seed)
        audit = read_audit(path, "syn", ATTRS, known_paths=set(rows.paths), num_images=N)
        est.append([stratified_rate(*audit.column(a), audit.strata, audit.stratum_sizes)[0] for a in ATTRS])
    est = np.asarray(est)
    se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(axis=0) - true_rate) < 3 * se + 1e-9), (est.mean(axis=0), true_rate, se)


def test_simulated_person_judges_only_what_it_is_told(population, tmp_path):
    table, labels, truth, _ = population
    s = draw_sample(read_rows(table), 50, seed=0, rare=2)
    path = write_sample(s, tmp_path)
    pm = pd.read_csv(labels)
    pm.loc[pm["path"] == s.paths[0], "Smiling"] = None      # the truth does not know this cell
    pm = pm[pm["path"] != s.paths[1]]                        # nor this face
    pm[ATTRS] = pm[ATTRS] * 2 - 1                            # ±1 coding
    pm.to_csv(tmp_path / "pm.csv", index=False)
    simulate_fill(path, tmp_path / "pm.csv", attributes=["Smiling", "Bald"])
    audit = read_audit(path, "syn", ATTRS)
    lab, judged = audit.column("Smiling")
    assert not judged[0] and not judged[1] and judged[2:].all()
    assert not audit.column("Goatee")[1].any()
    rows = [int(p.split("/")[1][:8]) for p in audit.paths]
    np.testing.assert_array_equal(lab[2:], truth[rows[2:], 2])


def test_simulate_audits_writes_what_analyze_reads(population, tmp_path):
    table, labels, truth, _ = population
    out = simulate_audits(table.parent, tmp_path / "audit", 80, 1, {"syn": labels})
    audit = read_audit(out["syn"], "syn", ATTRS, num_images=N)
    assert len(audit) == 80 and audit.judged.all() and audit.design.kind == "stratified"
