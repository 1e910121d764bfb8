"""Oracle checks for the analysis numerics: Bernoulli/joint KL, Wilson intervals, combination codes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy

from facemac.analysis.arrays import pack_bits, unpack_bits
from facemac.analysis.divergence import (attribute_kl, bernoulli_kl, joint_kl, pairwise_attribute_kl,
                                         smoothed_rate)
from facemac.analysis.rates import wilson_interval


@settings(max_examples=200, deadline=None)
@given(n_p=st.integers(0, 10_000), n_q=st.integers(0, 10_000), fp=st.floats(0, 1), fq=st.floats(0, 1),
       alpha=st.sampled_from([0.5, 1.0, 0.01, 2.0]))
def test_attribute_kl_matches_scipy_entropy_on_smoothed_pair(n_p, n_q, fp, fq, alpha):
    pos_p, pos_q = round(fp * n_p), round(fq * n_q)
    p = (pos_p + alpha) / (n_p + 2 * alpha)
    q = (pos_q + alpha) / (n_q + 2 * alpha)
    expected = entropy([p, 1 - p], [q, 1 - q])  # natural log: nats
    assert attribute_kl(pos_p, n_p, pos_q, n_q, alpha) == pytest.approx(expected, abs=1e-9)


def test_bernoulli_kl_known_values_and_edges():
    assert bernoulli_kl(0.5, 0.5) == 0.0
    assert bernoulli_kl(0.3, 0.6) == pytest.approx(0.3 * math.log(0.3 / 0.6) + 0.7 * math.log(0.7 / 0.4), abs=1e-12)
    assert bernoulli_kl(0.0, 0.5) == pytest.approx(math.log(2), abs=1e-12)
    assert np.isinf(bernoulli_kl(0.5, 0.0))  # unsmoothed zero: why alpha exists
    out = bernoulli_kl(np.array([0.1, 0.2]), np.array([[0.3], [0.4]]))
    assert out.shape == (2, 2)


def test_pairwise_attribute_kl_is_both_directions_of_the_loop():
    rng = np.random.default_rng(1)
    n = rng.integers(1, 500, size=(3, 5)).astype(float)
    pos = np.floor(n * rng.random((3, 5)))
    kl = pairwise_attribute_kl(pos, n, 0.5)
    for i in range(3):
        for j in range(3):
            assert np.allclose(kl[i, j], attribute_kl(pos[i], n[i], pos[j], n[j], 0.5), atol=1e-12)
    assert np.allclose(np.diagonal(kl, axis1=0, axis2=1), 0.0)
    assert not np.allclose(kl[0, 1], kl[1, 0])  # KL is asymmetric


def test_smoothed_rate_adds_alpha_per_outcome():
    assert smoothed_rate(0, 0, 0.5) == 0.5
    assert smoothed_rate(3, 10, 0.5) == pytest.approx(3.5 / 11)


def test_joint_kl_and_coverage_hand_example():
    """Three attributes (a, b, c); 8 possible combinations, only some observed.

    P: 000 x2, 001 x1, 011 x1  (N_P = 4)      Q: 000 x1, 010 x3  (N_Q = 4)
    Union of observed combinations U = {000, 001, 010, 011}, k = 4; the other four are ignored.
    alpha = 0.5 per combination in U, in both P and Q: denominators 4 + 0.5*4 = 6.
      p = [2.5, 1.5, 0.5, 1.5] / 6          q = [1.5, 0.5, 3.5, 0.5] / 6     (order 000, 001, 010, 011)
    KL(P||Q) = 1/6 [2.5 ln(2.5/1.5) + 1.5 ln(1.5/0.5) + 0.5 ln(0.5/3.5) + 1.5 ln(1.5/0.5)]
             = 1/6 [1.2770641 + 1.6479184 - 0.9729551 + 1.6479184] = 0.5999910
    KL(Q||P) = 1/6 [1.5 ln(1.5/2.5) + 0.5 ln(0.5/1.5) + 3.5 ln(3.5/0.5) + 0.5 ln(0.5/1.5)]
             = 1/6 [-0.7662384 - 0.5493061 + 6.8106855 - 0.5493061] = 0.8243058
    Coverage of P by Q: P's unsmoothed mass on combinations Q has = 000 only = 2/4 = 0.5.
    Coverage of Q by P: Q's mass on combinations P has = 000 only = 1/4 = 0.25.
    """
    combos = ["000", "001", "010", "011", "100", "101", "110", "111"]
    cp = np.array([2, 1, 0, 1, 0, 0, 0, 0], float)
    cq = np.array([1, 0, 3, 0, 0, 0, 0, 0], float)
    assert len(combos) == len(cp)
    kl_pq, cov_pq = joint_kl(cp, cq, 0.5)
    kl_qp, cov_qp = joint_kl(cq, cp, 0.5)
    assert kl_pq == pytest.approx(0.5999910, abs=1e-6)
    assert kl_qp == pytest.approx(0.8243058, abs=1e-6)
    assert kl_pq == pytest.approx((2.5 * math.log(2.5 / 1.5) + 3 * math.log(3) + 0.5 * math.log(1 / 7)) / 6, abs=1e-12)
    assert (cov_pq, cov_qp) == (0.5, 0.25)
    # zeros outside the union change nothing; alpha = 0 makes a missing combination infinite
    assert joint_kl(cp[:4], cq[:4], 0.5)[0] == pytest.approx(kl_pq, abs=1e-12)
    assert np.isinf(joint_kl(cp, cq, 0.0)[0])


@pytest.mark.parametrize("k,n,low,high", [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                          (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_newcombe_1998(k, n, low, high):
    """Newcombe RG (1998), 'Two-sided confidence intervals for the single proportion: comparison of seven methods',
    Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score interval without continuity correction)."""
    lo, hi = wilson_interval(k, n, 0.95)
    assert float(lo) == pytest.approx(low, abs=5e-5)
    assert float(hi) == pytest.approx(high, abs=5e-5)


def test_wilson_vectorised_and_empty():
    lo, hi = wilson_interval(np.array([0, 5, 10]), np.array([0, 10, 10]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert lo[1] < 0.5 < hi[1] and hi[2] == pytest.approx(1.0) and lo[2] < 1.0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 64), st.integers(0, 2**31))
def test_pack_bits_roundtrip(k, seed):
    bits = np.random.default_rng(seed).random((17, k)) < 0.5
    codes = pack_bits(bits)
    assert codes.dtype == np.uint64
    assert np.array_equal(unpack_bits(codes, k), bits)
    assert len(np.unique(codes)) == len(np.unique(bits, axis=0))


def test_jensen_shannon_matches_scipy_and_is_bounded_and_symmetric():
    from scipy.spatial.distance import jensenshannon

    from facemac.analysis.divergence import bernoulli_js, jensen_shannon, pairwise_attribute_js

    rng = np.random.default_rng(2)
    p, q = rng.dirichlet(np.ones(5), 20), rng.dirichlet(np.ones(5), 20)
    assert np.allclose(jensen_shannon(p, q), [jensenshannon(a, b) ** 2 for a, b in zip(p, q)], atol=1e-12)
    assert np.allclose(jensen_shannon(p, q), jensen_shannon(q, p))
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(math.log(2))  # disjoint: the bound, where KL is infinite
    assert bernoulli_js(0.3, 0.3) == 0.0 and bernoulli_js(0.0, 1.0) == pytest.approx(math.log(2))
    n = rng.integers(1, 500, size=(3, 4)).astype(float)
    pos = np.floor(n * rng.random((3, 4)))
    js = pairwise_attribute_js(pos, n, 0.5)
    assert js.shape == (3, 3, 4) and np.allclose(js, js.transpose(1, 0, 2))
    rate = smoothed_rate(pos, n, 0.5)
    assert js[0, 1, 2] == pytest.approx(jensenshannon([rate[0, 2], 1 - rate[0, 2]], [rate[1, 2], 1 - rate[1, 2]]) ** 2)
