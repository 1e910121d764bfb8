"""Streaming counts and the cluster bootstrap: batch-size invariance, unit bookkeeping, resampling by identity."""

from __future__ import annotations

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from facemac.analysis.bootstrap import bootstrap
from facemac.analysis.joint import fast_joint_kl
from facemac.analysis.arrays import pack_bits, unpack_bits
from facemac.analysis.counts import CountAccumulator
from facemac.analysis.divergence import joint_kl
from facemac.analysis.readers import Batch


def _batches(values, valid, identities, size):
    """Split rows into Batch objects of ``size`` rows (identities: list of str|None)."""
    for s in range(0, len(values), size):
        ids = identities[s:s + size]
        names = np.array(sorted({i for i in ids if i is not None}), dtype=object)
        lookup = {n: k for k, n in enumerate(names)}
        codes = np.array([lookup[i] if i is not None else -1 for i in ids], dtype=np.int64)
        yield Batch(values[s:s + size], valid[s:s + size], codes, names, np.zeros(values.shape[1], np.int64))


def _count(values, valid, identities, size, soft=False, track=True, joint=None):
    acc = CountAccumulator(np.full(values.shape[1], 0.5), np.arange(values.shape[1]) if joint is None else joint,
                           soft=soft, track_units=track)
    for b in _batches(values, valid, identities, size):
        acc.add(b)
    return acc.result()


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n, a = 500, 6
    values = rng.random((n, a)).astype(np.float32)
    valid = rng.random((n, a)) > 0.1
    identities = [f"id{rng.integers(0, 40)}" if rng.random() > 0.3 else None for _ in range(n)]
    return values, valid, identities


@pytest.mark.parametrize("soft", [False, True])
def test_counts_do_not_depend_on_batch_size(table, soft):
    values, valid, ids = table
    whole = _count(values, valid, ids, 10_000, soft)
    small = _count(values, valid, ids, 7, soft)
    assert np.array_equal(whole.n, small.n) and np.allclose(whole.positives, small.positives)
    assert np.array_equal(whole.joint_keys, small.joint_keys)
    assert np.array_equal(whole.joint_counts, small.joint_counts)
    # against a direct computation
    hard = (values >= 0.5) & valid
    assert np.array_equal(whole.n, valid.sum(0))
    expected = np.where(valid, values, 0).sum(0) if soft else hard.sum(0)
    assert np.allclose(whole.positives, expected, rtol=1e-5)
    full = valid.all(1)
    keys, counts = np.unique(pack_bits(hard[full]), return_counts=True)
    assert np.array_equal(whole.joint_keys, keys) and np.array_equal(whole.joint_counts, counts)


def test_units_add_up_to_the_totals(table):
    values, valid, ids = table
    c = _count(values, valid, ids, 13)
    u = c.units
    assert u.num_identities == u.num_clusters == len({i for i in ids if i is not None})
    anonymous = sum(i is None for i in ids)
    assert u.draws == u.num_identities + anonymous  # one draw per identity and per anonymous image
    a = values.shape[1]
    pat_n = (u.pattern_count[:, None] * unpack_bits(u.pattern_valid, a)).sum(0)
    pat_s = (u.pattern_count[:, None] * unpack_bits(u.pattern_labels, a)).sum(0)
    assert np.allclose(u.n.sum(0) + pat_n, c.n) and np.allclose(u.s.sum(0) + pat_s, c.positives)
    covered = unpack_bits(u.pattern_valid, a).all(1)
    assert u.joint_count.sum() + u.pattern_count[covered].sum() == c.joint_counts.sum()
    # anonymous rows are grouped by pattern: one pattern when all rows are equal
    bits = np.zeros_like(valid)
    many = _count(bits.astype(np.float32), np.ones_like(valid), [None] * len(ids), 50)
    assert len(many.units.pattern_count) == 1 and many.units.pattern_count[0] == len(ids)
    # soft mode cannot pool probabilities: every anonymous image is its own cluster
    soft = _count(values, valid, ids, 13, soft=True).units
    assert soft.num_clusters == u.num_identities + anonymous and len(soft.pattern_count) == 0
    assert np.allclose(soft.s.sum(0), np.where(valid, values, 0).sum(0), rtol=1e-5)


def _one_dataset_replicates(values, valid, ids, n_boot, seed=0, soft=False):
    c = _count(values, valid, ids, 64, soft=soft)
    return bootstrap([c, c], [], 0.5, n_boot, seed)


@pytest.mark.parametrize("soft", [False, True])
def test_bootstrap_resamples_images_when_identities_are_unknown(soft):
    rng = np.random.default_rng(3)
    n = 1000
    values = (rng.random((n, 1)) < 0.3).astype(np.float32)
    reps = _one_dataset_replicates(values, np.ones((n, 1), bool), [None] * n, 400, soft=soft)
    rate = reps.positives[:, 0, 0] / reps.n[:, 0, 0]
    assert np.allclose(reps.n[:, 0, 0], n)  # every replicate draws n images
    p = values.mean()
    assert rate.std() == pytest.approx(np.sqrt(p * (1 - p) / n), rel=0.2)  # binomial resampling


def test_bootstrap_resamples_identities_as_clusters():
    """20 identities x 50 images, each identity all-positive or all-negative: the rate varies like 20 draws."""
    n_id, per = 20, 50
    ids = [f"id{i}" for i in range(n_id) for _ in range(per)]
    values = np.array([[float(i % 2)] for i in range(n_id) for _ in range(per)], np.float32)
    reps = _one_dataset_replicates(values, np.ones_like(values, bool), ids, 300)
    rate = reps.positives[:, 0, 0] / reps.n[:, 0, 0]
    assert rate.std() == pytest.approx(np.sqrt(0.25 / n_id), rel=0.25)  # ~0.11, not the image-level ~0.016
    again = _one_dataset_replicates(values, np.ones_like(values, bool), ids, 300)
    assert np.array_equal(reps.positives, again.positives)  # seeded


def test_bootstrap_joint_replicates_are_consistent_with_point_estimate():
    rng = np.random.default_rng(5)
    values = (rng.random((300, 3)) < [0.2, 0.5, 0.7]).astype(np.float32)
    ids = [f"id{i // 3}" for i in range(300)]
    c1 = _count(values[:150], np.ones((150, 3), bool), ids[:150], 32)
    c2 = _count(values[150:], np.ones((150, 3), bool), ids[150:], 32)
    reps = bootstrap([c1, c2], [[0, 1]], 0.5, 50, 0)
    assert np.isfinite(reps.joint_kl[:, 0, 1]).all() and (reps.joint_kl[:, 0, 1] >= 0).all()
    assert np.allclose(reps.n[:, 2], reps.n[:, 0] + reps.n[:, 1])  # pooled = sum of members
    assert np.isnan(reps.joint_kl[:, 0, 0]).all()
    # a pooled group of one dataset and that dataset: identical replicate, zero divergence
    reps1 = bootstrap([c1, c2], [[0]], 0.5, 10, 0)
    assert np.allclose(reps1.joint_kl[:, 0, 2], 0.0, atol=1e-12) and np.allclose(reps1.coverage[:, 0, 2], 1.0)


def _support(vec, alpha):
    from facemac.analysis.joint import _Support
    return _Support(vec, alpha)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(1, 40), alpha=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       density=st.floats(0.05, 1.0))
def test_fast_joint_kl_equals_direct_formula(seed, k, alpha, density):
    """The bootstrap's O(shared) joint KL equals divergence.joint_kl on the aligned vectors (alpha = 0 included)."""
    rng = np.random.default_rng(seed)
    cp = np.where(rng.random(k) < density, rng.integers(0, 30, k), 0).astype(float)
    cq = np.where(rng.random(k) < density, rng.integers(0, 30, k), 0).astype(float)
    sp_idx, sq_idx = np.flatnonzero(cp > 0), np.flatnonzero(cq > 0)
    shared = np.intersect1d(sp_idx, sq_idx)
    got = fast_joint_kl(_support(cp[sp_idx], alpha), _support(cq[sq_idx], alpha), cp[shared], cq[shared], alpha)
    want_pq = joint_kl(cp, cq, alpha)
    want_qp = joint_kl(cq, cp, alpha)
    for g, w in zip(got, (*want_pq, *want_qp)):
        assert (np.isnan(g) and np.isnan(w)) or g == pytest.approx(w, rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(1, 40), alpha=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       density=st.floats(0.05, 1.0), scale=st.sampled_from([1, 30, 10_000]))
def test_fast_joint_js_equals_direct_formula(seed, k, alpha, density, scale):
    """The bootstrap's joint JS (sums over distinct counts) equals divergence.joint_js, which scipy confirms."""
    from scipy.spatial.distance import jensenshannon

    from facemac.analysis.divergence import joint_js
    from facemac.analysis.joint import fast_joint_js

    rng = np.random.default_rng(seed)
    cp = np.where(rng.random(k) < density, rng.integers(0, scale + 1, k), 0).astype(float)
    cq = np.where(rng.random(k) < density, rng.integers(0, scale + 1, k), 0).astype(float)
    sp_idx, sq_idx = np.flatnonzero(cp > 0), np.flatnonzero(cq > 0)
    shared = np.intersect1d(sp_idx, sq_idx)
    got = fast_joint_js(_support(cp[sp_idx], alpha), _support(cq[sq_idx], alpha), cp[shared], cq[shared], alpha)
    want = joint_js(cp, cq, alpha)
    assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-9, abs=1e-12)
    union = (cp > 0) | (cq > 0)
    if union.any() and cp.sum() > 0 and cq.sum() > 0:
        p = (cp[union] + alpha) / (cp.sum() + alpha * union.sum())
        q = (cq[union] + alpha) / (cq.sum() + alpha * union.sum())
        assert want == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9, abs=1e-12)
        assert 0 <= want <= np.log(2) + 1e-12
