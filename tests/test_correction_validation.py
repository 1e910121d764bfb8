"""The no-audit correction (issue #20 §2): validation confusion per identity-resampled replicate, ACC/PACC against
QuaPy, the boundary posterior against numeric integration, a seeded coverage simulation, and the validation
predictions travelling checkpoint → annotation table → analysis."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from facemac.analysis.bootstrap import draw_counts
from facemac.analysis.correction import validation as V
from facemac.analysis.correction.validation import (ConfusionStats, TargetSummary, ValidationSet, confusion_stats,
                                                    correct, load_validation, posterior_mean)
from facemac.annotation_table import (VALIDATION_FILE, VALIDATION_KEY, build_manifest, build_part, read_validation,
                                      verify_table, write_manifest, write_part, write_validation)
from facemac.errors import DataError


def _validation(rng, identities=120, per=6, rates=(0.03, 0.3, 0.6), tpr=(0.7, 0.85, 0.9), fpr=(0.04, 0.1, 0.2)):
    """Identity-level true labels (constant within an identity), per-row errors at the given tpr/fpr, and
    probabilities whose >0.5 cut reproduces those errors."""
    a = len(rates)
    ident = np.repeat(np.arange(identities), per)
    y = (rng.random((identities, a)) < rates)[ident]
    pred = np.where(y, rng.random(y.shape) < tpr, rng.random(y.shape) < fpr)
    probs = np.where(pred, 0.5 + 0.5 * rng.random(y.shape), 0.5 * rng.random(y.shape)).astype(np.float32)
    labels = y.astype(np.int8)
    return ValidationSet([f"a{j}" for j in range(a)], ident, labels, probs, np.full(a, 0.5))


def test_confusion_stats_by_hand_and_identity_draws():
    rng = np.random.default_rng(0)
    vs = _validation(rng)
    vs.labels[:7, 1] = -1  # unknown cells never count
    st = confusion_stats(vs)
    y, pred = vs.labels, vs.probs > 0.5
    for j in range(3):
        d = y[:, j] >= 0
        assert st.tpr[0, j] == pytest.approx(pred[d & (y[:, j] == 1), j].mean())
        assert st.fpr[0, j] == pytest.approx(pred[d & (y[:, j] == 0), j].mean())
        assert st.p1[0, j] == pytest.approx(vs.probs[y[:, j] == 1, j].mean(), rel=1e-6)
        assert st.pos[0, j] + st.neg[0, j] == d.sum()
    # drawing identity 3 twice and identity 5 never equals duplicating / removing their rows
    w = np.ones((1, vs.num_identities))
    w[0, 3], w[0, 5] = 2, 0
    rows = np.concatenate([np.flatnonzero(vs.identity != 5), np.flatnonzero(vs.identity == 3)])
    dup = ValidationSet(vs.attributes, vs.identity[rows], vs.labels[rows], vs.probs[rows], vs.thresholds)
    got, want = confusion_stats(vs, w), confusion_stats(dup)
    np.testing.assert_allclose(got.tp, want.tp)
    np.testing.assert_allclose(got.prob_neg, want.prob_neg)
    with pytest.raises(ValueError, match="identity_draws"):
        confusion_stats(vs, np.ones((2, 3)))


def test_acc_and_pacc_equal_quapy():
    """The vectorised Rogan–Gladen/ACC and PACC give QuaPy's estimates on the same validation and target data."""
    quapy = pytest.importorskip("quapy")
    from quapy.method.aggregative import ACC, PACC

    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression().fit([[0.0], [1.0]], [0, 1])  # only its classes matter: predictions are given
    rng = np.random.default_rng(1)
    vs = _validation(rng)
    st = confusion_stats(vs)
    target = _validation(np.random.default_rng(2), rates=(0.1, 0.5, 0.8))
    tp = target.probs.astype(np.float64)
    q = (tp > 0.5).mean(0, keepdims=True)
    ours_acc = correct(TargetSummary(q), st, "acc_clip", check=False).replicates[0]
    ours_pacc = correct(TargetSummary(q, tp.mean(0, keepdims=True)), st, "pacc_clip", check=False).replicates[0]
    for j in range(3):
        y, p = vs.labels[:, j].astype(int), vs.probs[:, j].astype(np.float64)
        acc = ACC(fitted, fit_classifier=False, val_split=None, solver="exact-raise")
        acc.aggregation_fit((p > 0.5).astype(int), y)
        pacc = PACC(fitted, fit_classifier=False, val_split=None, solver="exact-raise")
        pacc.aggregation_fit(np.stack([1 - p, p], 1), y)
        assert ours_acc[j] == pytest.approx(acc.aggregate((tp[:, j] > 0.5).astype(int))[1], abs=1e-9)
        assert ours_pacc[j] == pytest.approx(pacc.aggregate(np.stack([1 - tp[:, j], tp[:, j]], 1))[1], abs=1e-9)
    assert quapy.__version__


@pytest.mark.filterwarnings("ignore:invalid value encountered in power:RuntimeWarning")  # scipy's skew, unused
def test_posterior_mean_matches_numeric_integration():
    from scipy.integrate import quad

    for m, s in [(-0.05, 0.02), (0.01, 0.03), (0.4, 0.05), (1.2, 0.1), (-0.3, 0.05), (0.5, 2.0)]:
        c = min(max(m, 0.0), 1.0)  # the normal density rescaled to 1 at the point of [0, 1] nearest m (no underflow)
        f = lambda x: np.exp(-((x - m) ** 2 - (c - m) ** 2) / (2 * s * s))  # noqa: E731
        num = quad(lambda x: x * f(x), 0, 1, points=[c], epsabs=1e-14, epsrel=1e-12, limit=200)[0]
        den = quad(f, 0, 1, points=[c], epsabs=1e-14, epsrel=1e-12, limit=200)[0]
        assert posterior_mean(np.array([m]), np.array([s]))[0] == pytest.approx(num / den, rel=1e-5, abs=1e-9)
    from scipy.stats import truncnorm  # and against scipy's truncated normal on a wide grid, tails included

    rng = np.random.default_rng(7)
    m = np.concatenate([rng.uniform(-3, 4, 2000), rng.uniform(-0.1, 1.1, 2000)])
    s = np.exp(rng.uniform(np.log(1e-3), np.log(3.0), 4000))
    np.testing.assert_allclose(posterior_mean(m, s), truncnorm.mean(-m / s, (1 - m) / s, loc=m, scale=s),
                               rtol=1e-9, atol=1e-12)
    # far in the tail (quad underflows there): the Mills-ratio asymptote s^2 / |m|
    assert posterior_mean(np.array([-3.0]), np.array([0.01]))[0] == pytest.approx(0.01 ** 2 / 3.0, rel=1e-3)
    assert posterior_mean(np.array([-0.2, 0.3, 1.4]), np.zeros(3)).tolist() == [0.0, 0.3, 1.0]  # no spread: clip


def _stats(tpr, fpr, pos=1000.0, neg=1000.0, b=1):
    z = lambda v: np.full((b, len(tpr)), v, dtype=np.float64)  # noqa: E731
    return ConfusionStats(pos=z(pos), neg=z(neg), tp=z(pos) * tpr, fp=z(neg) * fpr, prob_pos=z(pos) * 0.8,
                          prob_neg=z(neg) * 0.2, unc_pos=z(pos) * 0.3, unc_neg=z(neg) * 0.3)


def test_rare_attribute_is_not_clipped_to_zero_and_its_interval_reaches_zero():
    """A counted rate below the false-positive rate: clipping says 0 (every KL against it explodes), the posterior
    mean stays small and positive, and the interval includes 0."""
    rng = np.random.default_rng(3)
    b = 400
    fpr = 0.05 + 0.01 * rng.standard_normal((b, 1))
    st = ConfusionStats(pos=np.full((b, 1), 100.0), neg=np.full((b, 1), 900.0), tp=np.full((b, 1), 70.0),
                        fp=900.0 * fpr, prob_pos=np.full((b, 1), 70.0), prob_neg=900.0 * fpr,
                        unc_pos=np.full((b, 1), 30.0), unc_neg=np.full((b, 1), 90.0))
    q = 0.045 + 0.008 * rng.standard_normal((b, 1))
    point = TargetSummary(np.array([[0.045]]))
    pstats = _stats(np.array([0.7]), np.array([0.05]), 100.0, 900.0)
    clip = correct(TargetSummary(q), st, "acc_clip", point, pstats, check=False)
    bayes = correct(TargetSummary(q), st, "acc_bayes", point, pstats, check=False)
    assert clip.point[0] == 0.0
    assert 0.0 < bayes.point[0] < 0.05
    assert (bayes.replicates > 0).all()
    low, high = bayes.interval()
    assert low[0] == 0.0 and bayes.point[0] < high[0] < 0.2


def test_count_and_nan_pass_through():
    st = _stats(np.array([0.8, 0.8]), np.array([0.1, 0.1]), b=3)
    rate = np.array([[0.3, np.nan]] * 3)
    c = correct(TargetSummary(rate), st, "count")
    np.testing.assert_array_equal(c.replicates[:, 0], 0.3)
    assert np.isnan(correct(TargetSummary(rate), st, "acc_bayes", check=False).replicates[:, 1]).all()
    with pytest.raises(ValueError, match="mean probability"):
        correct(TargetSummary(rate), st, "pacc_bayes", check=False)
    with pytest.raises(ValueError, match="check=False"):  # no silent unchecked correction
        correct(TargetSummary(rate), st, "acc_bayes")
    with pytest.raises(ValueError, match="unknown"):
        correct(TargetSummary(rate), st, "magic")
    assert V.needs_mean_prob("pacc_clip") and not V.needs_mean_prob(V.DEFAULT_METHOD.replace("pacc", "acc"))


def test_coverage_of_the_rate_intervals_at_known_error_rates():
    """Seeded simulation: validation (120 identities x 6) and target (250 x 8) with identity-level labels and per-row
    errors at known tpr/fpr; bootstrap resampling both identity sets; the corrected rate's 95 % interval covers the
    true population rate in ~95 % of runs, rare attribute included (3 attributes x 150 runs)."""
    rng = np.random.default_rng(20)
    rates, tpr, fpr = np.array([0.03, 0.3, 0.6]), np.array([0.7, 0.85, 0.9]), np.array([0.04, 0.1, 0.2])
    n_id, per, b, runs = 250, 8, 200, 150
    hits, hits_count, width, consistent = [], [], [], []
    for _ in range(runs):
        vs = _validation(rng, rates=rates, tpr=tpr, fpr=fpr)
        target = _validation(rng, n_id, per, rates, tpr, fpr)  # the same errors: the check should pass
        summ = [(target.probs > 0.5), target.probs, V.uncertain(target.probs)]
        per_id = [x.reshape(n_id, per, 3).sum(1).astype(np.float64) for x in summ]
        wt = draw_counts(rng, np.ones(n_id), b)
        reps = TargetSummary(*[(wt @ x) / (wt.sum(1, keepdims=True) * per) for x in per_id])
        point = TargetSummary(*[x.sum(0, keepdims=True) / (n_id * per) for x in per_id])
        st = confusion_stats(vs, draw_counts(rng, vs.identity_weights, b))
        c = correct(reps, st, "acc_bayes", point, confusion_stats(vs))
        consistent.append(bool(c.check.consistent))
        q = reps.rate
        low, high = c.interval()
        hits.append((low <= rates) & (rates <= high))
        width.append(high - low)
        lo_c, hi_c = np.percentile(q, [2.5, 97.5], axis=0)
        hits_count.append((lo_c <= rates) & (rates <= hi_c))
        assert ((c.point >= low) & (c.point <= high)).all()
    cover = np.mean(hits, 0)
    print("coverage", cover.round(3), "counted", np.mean(hits_count, 0).round(3), "consistent", np.mean(consistent))
    assert (cover >= 0.89).all() and (cover <= 0.995).all(), cover
    assert np.mean(consistent) >= 0.95  # the assumption check rarely rejects a target that errs as validation does
    assert np.mean(hits_count, 0)[0] < 0.2  # counting misses the rare rate (0.03 counted as ~0.07): what is fixed
    assert (np.mean(width, 0) < 0.25).all()


def test_shift_check_keeps_counting_where_the_mac_errs_unlike_validation():
    """A target the MAC classifies better than its validation split (the demo's synthetic-like case): correcting with
    validation rates would over-correct; the check sees its probabilities are no mixture of validation's and keeps
    the counted rates for the whole dataset; a label-shifted target (only the rates differ) is corrected."""
    rng = np.random.default_rng(5)
    rates = np.array([0.1, 0.3, 0.5, 0.7])
    tpr, fpr = np.array([0.75, 0.8, 0.85, 0.8]), np.array([0.1, 0.15, 0.1, 0.2])
    b = 200

    def summaries(t):
        n_id = t.num_identities
        per_id = []
        for x in ((t.probs > 0.5), t.probs, V.uncertain(t.probs)):
            acc = np.zeros((n_id, 4))
            np.add.at(acc, t.identity, x.astype(np.float64))
            per_id.append(acc)
        rows = np.bincount(t.identity).astype(np.float64)
        wt = draw_counts(rng, np.ones(n_id), b)
        return (TargetSummary(*[(wt @ x) / (wt @ rows)[:, None] for x in per_id]),
                TargetSummary(*[x.sum(0, keepdims=True) / rows.sum() for x in per_id]))

    vs = _validation(rng, 150, 8, rates, tpr, fpr)
    st, st0 = confusion_stats(vs, draw_counts(rng, vs.identity_weights, b)), confusion_stats(vs)
    shifted = _validation(rng, 250, 8, rates[::-1], tpr, fpr)  # other rates, the same errors
    easy = _validation(rng, 250, 8, rates[::-1], np.full(4, 0.97), np.full(4, 0.02))  # fewer errors, and more
    easy.probs[:] = np.where(easy.probs > 0.5, 0.9 + 0.1 * rng.random(easy.probs.shape),  # confident probabilities
                             0.1 * rng.random(easy.probs.shape)).astype(np.float32)
    reps, point = summaries(shifted)
    c_shift = correct(reps, st, "acc_bayes", point, st0)
    assert c_shift.check.consistent and c_shift.check.applied.all()
    reps, point = summaries(easy)
    c_easy = correct(reps, st, "acc_bayes", point, st0)
    assert not c_easy.check.consistent and not c_easy.check.applied.any()
    np.testing.assert_allclose(c_easy.point, point.rate[0])  # counted, and check.applied says so
    unchecked = correct(reps, st, "acc_bayes", point, st0, check=False)
    truth = easy.labels.mean(0)
    assert np.abs(unchecked.point - truth).mean() > np.abs(c_easy.point - truth).mean()  # it would over-correct

    # an engine that keeps only hard-label counts per identity: moments drawn from row sums given the rate's
    # replicates reach the same decisions, and spread like the streamed (identity-resampled) moments
    for t, want in ((shifted, True), (easy, False)):
        reps, point = summaries(t)
        m_b, u_b = V.moment_replicates(reps.rate, V.RowMoments.of(t.probs, t.thresholds), rng)
        c = correct(TargetSummary(reps.rate, m_b, u_b), st, "acc_bayes", point, st0)
        assert bool(c.check.consistent) is want
        ratio = m_b.std(0) / reps.mean_prob.std(0)
        assert (ratio > 0.7).all() and (ratio < 1.4).all(), ratio
        corr = [np.corrcoef(m_b[:, j], reps.rate[:, j])[0, 1] for j in range(4)]
        assert min(corr) > 0.5  # the moments move with the counted rate, as streamed ones do


# --- the validation predictions on disk ----------------------------------------------------------------------------

ATTRS = ["Male", "Smiling", "Eyeglasses"]


def _table(tmp_path, with_validation=True, sha="abc"):
    d = tmp_path / "ds"
    d.mkdir(parents=True)
    probs = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    part = write_part(build_part([f"p{i}" for i in range(4)], ["x"] * 4, probs, ATTRS), d / "part-00000.parquet")
    extra = {"counting_thresholds": {"Male": 0.4, "Smiling": 0.5, "Eyeglasses": 0.6},
             "label_thresholds": "counting_thresholds"}
    if with_validation:
        rng = np.random.default_rng(1)
        labels = rng.integers(-1, 2, (10, 3)).astype(np.int8)
        extra[VALIDATION_KEY] = write_validation(d, np.repeat(np.arange(5), 2), labels,
                                                 rng.random((10, 3)).astype(np.float32), ATTRS)
    m = build_manifest(dataset="ds", group="real", source_format="folders", root="/r", checkpoint="c",
                       checkpoint_sha256=sha, attributes=ATTRS, thresholds=[0.5] * 3, part_files=[part],
                       part_rows=[4], num_failures=0, complete=True, mc_samples=0, extra=extra)
    write_manifest(d, m)
    return d


def test_validation_file_roundtrip_tamper_and_old_tables(tmp_path, caplog):
    d = _table(tmp_path)
    verify_table(d)
    vs = load_validation(d)
    assert vs.attributes == ATTRS and vs.num_rows == 10 and vs.num_identities == 5
    np.testing.assert_array_equal(vs.thresholds, [0.4, 0.5, 0.6])  # the set the labels use
    np.testing.assert_array_equal(load_validation(d, "reporting").thresholds, [0.5] * 3)
    assert vs.select(["Eyeglasses", "Male"]).labels.shape == (10, 2)
    with pytest.raises(DataError, match="lack attributes"):
        vs.select(["Bald"])
    (d / VALIDATION_FILE).write_bytes((d / VALIDATION_FILE).read_bytes()[:-3] + b"xyz")
    with pytest.raises(DataError, match="SHA-256"):
        load_validation(d)
    with pytest.raises(DataError, match="SHA-256"):
        verify_table(d)
    (d / VALIDATION_FILE).unlink()
    with pytest.raises(DataError, match="missing"):
        read_validation(d, json.loads((d / "manifest.json").read_text())[VALIDATION_KEY])

    old = _table(tmp_path / "old", with_validation=False, sha="old-ckpt")
    V._warned.discard("old-ckpt")
    with caplog.at_level(logging.WARNING):
        assert load_validation(old) is None
        assert load_validation(old) is None
    said = [r for r in caplog.records if "predates validation predictions" in r.getMessage()]
    assert len(said) == 1 and "retrain to enable the correction" in said[0].getMessage()


def test_training_stores_bounded_validation_predictions(make_cfg, tmp_path):
    from facemac.checkpoint import checkpoint_validation, load_checkpoint
    from facemac.training.counting import counting_thresholds
    from facemac.training.run import train
    from tests.train_helpers import make_table
    from tests.test_train_run import FAST

    train(make_cfg("train", FAST + ["train.epochs=1"]), table=make_table(60, masked_fraction=0.1))
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    v = best["validation"]
    assert v["identity"].dtype == torch.int64 and v["labels"].dtype == torch.int8 and v["probs"].dtype == torch.float16
    assert v["labels"].shape == (12, 3) and v["rows_total"] == 12 and set(v["labels"].unique().tolist()) <= {-1, 0, 1}
    assert (v["labels"] == -1).any()  # masked cells stay unknown
    identity, labels, probs = checkpoint_validation(load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt"))
    # the stored predictions are those the counting thresholds were tuned on
    again = counting_thresholds(probs, labels == 1, labels >= 0, "accuracy")
    pred_now = probs > np.array(again, np.float32)
    pred_ckpt = probs > np.array(best["counting_thresholds"], np.float32)
    assert (pred_now == pred_ckpt).mean() > 0.97

    from facemac.errors import ConfigError
    with pytest.raises(ConfigError, match="train.validation_rows=-1"):
        train(make_cfg("train", FAST + ["train.validation_rows=-1"]), table=make_table(30))
    train(make_cfg("train", FAST + ["train.epochs=1", "train.validation_rows=0"], output_dir=tmp_path / "none"),
          table=make_table(30))
    assert "validation" not in torch.load(tmp_path / "none" / "checkpoints" / "best.pt", weights_only=True)

    from facemac.training.validation_store import bounded_rows
    ident = np.repeat(np.arange(10), [1, 5, 2, 2, 7, 1, 3, 3, 1, 5])
    keep = bounded_rows(ident, 12, 0)
    assert len(keep) <= 12 and len(keep) >= 6
    for i in np.unique(ident[keep]):  # whole identities only
        assert (ident[keep] == i).sum() == (ident == i).sum()


def test_annotation_carries_validation_and_old_checkpoints_work(make_cfg, tmp_path, caplog):
    from facemac.annotation.run import annotate
    from facemac.checkpoint import load_checkpoint, save_checkpoint
    from tests.annotate_helpers import make_checkpoint, make_folders
    from tests.test_annotate_run import _cfg

    root = tmp_path / "data"
    make_folders(root, identities=2, per_identity=3)
    old = make_checkpoint(tmp_path / "old.pt")
    ck = load_checkpoint(old)
    rng = np.random.default_rng(0)
    ck["validation"] = {"identity": torch.arange(8) // 2,
                        "labels": torch.from_numpy(rng.integers(-1, 2, (8, 3)).astype(np.int8)),
                        "probs": torch.from_numpy(rng.random((8, 3)).astype(np.float16)), "split": "val",
                        "rows_total": 8}
    new = save_checkpoint({k: v for k, v in ck.items() if k not in ("format", "format_version")}, tmp_path / "new.pt")
    annotate(_cfg(make_cfg, new, root, tmp_path / "run"))
    ann = tmp_path / "run" / "annotations" / "dcface"
    manifest, _ = verify_table(ann)
    assert manifest[VALIDATION_KEY]["rows"] == 8 and manifest[VALIDATION_KEY]["identities"] == 4
    vs = load_validation(ann)
    np.testing.assert_array_equal(vs.labels, ck["validation"]["labels"].numpy())
    np.testing.assert_array_equal(vs.probs, ck["validation"]["probs"].float().numpy())
    from facemac.lineage import annotation_artifact_files
    assert ann / VALIDATION_FILE in annotation_artifact_files(ann, manifest)
    annotate(_cfg(make_cfg, new, root, tmp_path / "run"))  # resumed (everything done): still listed
    assert verify_table(ann)[0][VALIDATION_KEY]["sha256"] == manifest[VALIDATION_KEY]["sha256"]

    annotate(_cfg(make_cfg, old, root, tmp_path / "run_old"))
    old_ann = tmp_path / "run_old" / "annotations" / "dcface"
    assert VALIDATION_KEY not in verify_table(old_ann)[0] and not (old_ann / VALIDATION_FILE).exists()
    assert load_validation(old_ann) is None


def test_several_datasets_at_once_equal_one_at_a_time():
    """[B, D, A] summaries (the engine's datasets side by side, one validation draw shared) give what each dataset
    gives alone."""
    rng = np.random.default_rng(9)
    vs = _validation(rng)
    st, st0 = confusion_stats(vs, draw_counts(rng, vs.identity_weights, 50)), confusion_stats(vs)
    rate, mean, unc = (rng.uniform(0.05, 0.9, (50, 2, 3)) for _ in range(3))
    both = correct(TargetSummary(rate, mean, unc), st, "acc_bayes", TargetSummary(rate[:1], mean[:1], unc[:1]), st0)
    for d in range(2):
        one = correct(TargetSummary(rate[:, d], mean[:, d], unc[:, d]), st, "acc_bayes",
                      TargetSummary(rate[:1, d], mean[:1, d], unc[:1, d]), st0)
        np.testing.assert_allclose(both.replicates[:, d], one.replicates)
        np.testing.assert_allclose(both.point[d], one.point)
        np.testing.assert_array_equal(both.check.applied[d], one.check.applied)
        assert bool(both.check.consistent[d]) == bool(one.check.consistent)
