"""Decoded cache: same batches as the uncached path, rebuilt when stale, written atomically, bad images recorded."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from facemac.atomic import LOCKS
from facemac.data import decoded_cache as dc
from facemac.data.augment import build_augment
from facemac.data.dataset import FaceDataset, collate_faces
from facemac.data.decode import decode_image
from facemac.data.preprocess import Preprocessor
from facemac.data.registry import build_table
from facemac.training.data import build_datasets
from facemac.training.run import train
from tests.train_helpers import make_table, write_celeba_tree

AUG = {"hflip": 0.5, "affine": {"p": 0.8}, "color": {"p": 0.8, "brightness": 0.2, "contrast": 0.2}}


@pytest.fixture
def celeba(tmp_path):
    """A tiny CelebA tree (178x218 JPEGs with landmarks) with one unreadable file."""
    root = write_celeba_tree(tmp_path / "celeba", n=30)
    (root / "img_align_celeba" / "000004.jpg").write_bytes(b"\xff\xd8 truncated")
    return root


def table_of(root: Path):
    return build_table({"format": "celeba", "root": str(root), "name": "tinyceleba"})


def batches(ds, seed: int, bs: int = 8):
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(ds, batch_size=bs, sampler=RandomSampler(ds, generator=gen), collate_fn=collate_faces)
    return list(loader)


def test_cached_batches_equal_uncached_for_the_same_seed(celeba, tmp_path):
    table = table_of(celeba)
    pre = Preprocessor("arcface", 32)
    cache = dc.open_or_build(table, pre, tmp_path / "cache", "t", progress=False)
    assert cache.images.shape == (30, 32, 32, 3) and cache.count == 30
    plain = batches(FaceDataset(table, pre, build_augment(AUG, seed=7)), seed=3)
    cached = batches(dc.CachedFaceDataset(table, cache, build_augment(AUG, seed=7)), seed=3)
    assert len(plain) == len(cached) == 4
    for a, b in zip(plain, cached):
        assert torch.equal(a["index"], b["index"])
        assert torch.equal(a["image"], b["image"]) and a["image"].dtype == torch.uint8
        assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["mask"], b["mask"])
        assert a["failures"] == b["failures"]
    fails = [f for b in cached for f in b["failures"]]
    keys = [table.keys[i] for i, _ in fails]
    assert keys == ["000004.jpg"] and not cache.ok[table.keys.index("000004.jpg")]
    assert "decodable" in fails[0][1]  # the uncached path's reason, recorded at build time
    # an oracle independent of the loaders: row 0 of the cache is decode -> warp of its file
    lm = table.landmarks[0]
    expect = pre(decode_image((celeba / "img_align_celeba" / table.keys[0]).read_bytes()), lm)
    assert np.array_equal(cache.images[0], expect)


def test_reused_when_current_rebuilt_when_a_label_or_file_changes(celeba, tmp_path):
    pre = Preprocessor("arcface", 24)
    table = table_of(celeba)
    c1 = dc.open_or_build(table, pre, tmp_path / "cache", "t", progress=False)
    marker = c1.path / "marker"
    marker.write_text("x")
    dc.open_or_build(table_of(celeba), pre, tmp_path / "cache", "t", progress=False)
    assert marker.exists(), "an unchanged source must reuse the cache"

    t2 = table_of(celeba)
    t2.labels[5, 2] = 1 - t2.labels[5, 2]
    dc.open_or_build(t2, pre, tmp_path / "cache", "t", progress=False)
    assert not marker.exists(), "a changed label must rebuild"

    marker.write_text("x")
    dc.open_or_build(table, Preprocessor("arcface", 28), tmp_path / "cache", "t", progress=False)
    assert not marker.exists(), "other preprocessing must rebuild"

    marker.write_text("x")
    f = celeba / "img_align_celeba" / table.keys[1]
    img = decode_image(f.read_bytes())
    import cv2
    ok, buf = cv2.imencode(".png", cv2.cvtColor(255 - img, cv2.COLOR_RGB2BGR))
    f.write_bytes(buf.tobytes())
    os.utime(f, ns=(1, 1))  # an older mtime and another size: whatever changes, the fingerprint sees it
    c3 = dc.open_or_build(table_of(celeba), Preprocessor("arcface", 28), tmp_path / "cache", "t", progress=False)
    assert not marker.exists(), "a changed image file must rebuild"
    assert np.array_equal(c3.images[1], Preprocessor("arcface", 28)(255 - img, table.landmarks[1]))


def test_build_is_atomic_and_a_corrupt_cache_is_rebuilt(celeba, tmp_path, monkeypatch):
    pre = Preprocessor("arcface", 24)
    table = table_of(celeba)
    base = tmp_path / "cache"
    good = dc.open_or_build(table, pre, base, "t", progress=False)
    before = np.array(good.images)

    t2 = table_of(celeba)
    t2.labels[0, 0] = 1 - t2.labels[0, 0]
    calls = {"n": 0}
    real = FaceDataset.__getitem__

    def dying(self, i):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt("killed mid-build")
        return real(self, i)

    monkeypatch.setattr(FaceDataset, "__getitem__", dying)
    with pytest.raises(KeyboardInterrupt):
        dc.open_or_build(t2, pre, base, "t", progress=False)
    monkeypatch.setattr(FaceDataset, "__getitem__", real)
    leftovers = [p.name for p in (base / "decoded").iterdir() if p.name not in ("t", LOCKS)]
    assert leftovers == [], leftovers
    # the previous complete cache is untouched (still valid for the old table)
    again = dc.DecodedCache.open(dc.cache_path(base, "t"), dc.fingerprint(table, pre))
    assert again is not None and np.array_equal(np.array(again.images), before)

    # a truncated images.npy (e.g. copied half-way by hand) is detected and rebuilt
    npy = dc.cache_path(base, "t") / dc.IMAGES
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    assert dc.DecodedCache.open(dc.cache_path(base, "t"), dc.fingerprint(table, pre)) is None
    rebuilt = dc.open_or_build(table, pre, base, "t", progress=False)
    assert np.array_equal(np.array(rebuilt.images), before)


def test_cache_survives_pickling_into_workers(celeba, tmp_path):
    table = table_of(celeba)
    pre = Preprocessor("resize", 16)
    cache = dc.open_or_build(table, pre, tmp_path / "cache", "r", workers=2, progress=False)
    ds = dc.CachedFaceDataset(table, cache)
    _ = cache.images  # opened in the parent: must not travel by value
    import pickle
    assert len(pickle.dumps(ds.cache)) < 10_000
    got = list(DataLoader(ds, batch_size=16, num_workers=2, collate_fn=collate_faces))
    ref = list(DataLoader(FaceDataset(table, pre), batch_size=16, collate_fn=collate_faces))
    for a, b in zip(got, ref):
        assert torch.equal(a["image"], b["image"]) and a["failures"] == b["failures"]


def test_training_with_decoded_cache_equals_uncached(make_cfg, tmp_path):
    """train.decoded_cache=true builds each split's cache under paths.cache_dir and trains to the same weights."""
    table = make_table(48, broken=2)
    fast = ["logger=none", "model.timm_name=test_resnet", "model.input_size=32", "data.num_workers=0",
            "data.batch_size=16", "augment=none", "train.progress=false", "train.epochs=1", "train.max_bad_fraction=0.5",
            f"paths.cache_dir={tmp_path / 'cache'}"]
    cfg = make_cfg("train", fast + ["train.decoded_cache=true"], tmp_path / "a")
    ds = build_datasets(table, cfg, 32)
    assert isinstance(ds["train"], dc.CachedFaceDataset)
    digest = hashlib.sha256(table.source.describe().encode()).hexdigest()[:8]  # the source: copies don't collide
    assert sorted(p.name for p in (tmp_path / "cache" / "decoded").iterdir()) == [
        LOCKS, f"tiny-{digest}-test-arcface32", f"tiny-{digest}-train-arcface32", f"tiny-{digest}-val-arcface32"]
    a = train(cfg, table=table)
    b = train(make_cfg("train", fast + ["train.decoded_cache=false"], tmp_path / "b"), table=table)
    wa = torch.load(a["best"], weights_only=True)["model_state"]
    wb = torch.load(b["best"], weights_only=True)["model_state"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["test"]["mA"] == pytest.approx(b["test"]["mA"])


def test_building_a_cache_leaves_the_global_rng_alone(celeba, tmp_path):
    """A run that builds the cache (worker processes) trains like one that finds it built: same torch RNG after."""
    torch.manual_seed(0)
    before = torch.get_rng_state()
    dc.open_or_build(table_of(celeba), Preprocessor("arcface", 32), tmp_path / "cache", "t", workers=2,
                     progress=False)
    assert torch.equal(before, torch.get_rng_state())


def test_a_build_in_progress_elsewhere_is_waited_for_and_reused(celeba, tmp_path):
    """Sweep jobs started together: one builds, the others wait on the cache's lock and reuse its result."""
    import threading

    from facemac.runlock import RunLock

    table, pre = table_of(celeba), Preprocessor("arcface", 32)
    path = dc.cache_path(tmp_path / "cache", "t")
    other_job = RunLock(path.parent / LOCKS, lock_name=f"{path.name}.lock").acquire()
    got = {}
    waiter = threading.Thread(target=lambda: got.update(
        cache=dc.open_or_build(table, pre, tmp_path / "cache", "t", progress=False)))
    waiter.start()
    waiter.join(1.0)
    assert waiter.is_alive() and not path.exists()  # waiting, not building a second copy
    path.mkdir()
    dc._build(table, pre, path, dc.fingerprint(table, pre), 0, 256, False, path.name)  # the other job's build lands
    inode = (path / dc.IMAGES).stat().st_ino
    other_job.release()
    waiter.join(30)
    assert got["cache"].path == path and (path / dc.IMAGES).stat().st_ino == inode  # reused, not rebuilt


def test_a_full_disk_is_one_clear_error_before_decoding(celeba, tmp_path, monkeypatch):
    """The memmap's blocks are reserved up front: no SIGBUS halfway through a build, no temp folder left."""
    import errno

    from facemac.errors import DataError

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    decoded = []
    monkeypatch.setattr(FaceDataset, "face", lambda self, i: decoded.append(i))
    with pytest.raises(DataError, match=r"no room for .* GiB under .*train.decoded_cache=false"):
        dc.open_or_build(table_of(celeba), Preprocessor("arcface", 32), tmp_path / "cache", "t", progress=False)
    assert decoded == []
    assert [p.name for p in (tmp_path / "cache" / "decoded").iterdir()] == [LOCKS]


def test_a_quota_leaves_auto_decoding_every_epoch_and_stops_an_explicit_cache(make_cfg, tmp_path, monkeypatch,
                                                                                caplog):
    """statvfs shows the file system's free space, not a user's quota (HPC home folders): EDQUOT at the reservation
    turns auto off with a warning; train.decoded_cache=true stops with the error."""
    import errno

    def over_quota(fd, offset, length):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(os, "posix_fallocate", over_quota)
    table = make_table(48)
    base = ["logger=none", "data.batch_size=8", "train.epochs=3", f"paths.cache_dir={tmp_path / 'cache'}"]
    with caplog.at_level("WARNING"):
        ds = build_datasets(table, make_cfg("train", base, tmp_path / "auto"), 32)
    assert type(ds["train"]) is FaceDataset and "Disk quota exceeded" in caplog.text
    assert "decoding every epoch instead" in caplog.text
    with pytest.raises(dc.CacheSpaceError, match="Disk quota exceeded.*train.decoded_cache=false"):
        build_datasets(table, make_cfg("train", base + ["train.decoded_cache=true"], tmp_path / "true"), 32)


def test_decoded_cache_auto_needs_two_passes_and_room(make_cfg, tmp_path):
    """auto = on when the faces are read at least twice and N*S*S*3 bytes fit half the disk and half the memory."""
    from facemac.errors import ConfigError
    from facemac.training.data import use_decoded_cache

    table = make_table(48)
    parts = {name: table.split(name) for name in ("train", "val", "test")}
    need = 48 * 32 * 32 * 3
    base = ["logger=none", "data.batch_size=8", f"paths.cache_dir={tmp_path / 'cache'}"]

    def decide(*overrides, disk=10 * need, memory=10 * need):
        return use_decoded_cache(make_cfg("train", base + list(overrides), tmp_path / "run"), parts, 32, disk,
                                 memory)[0]

    assert decide("train.epochs=2") and decide("train.epochs=3")
    assert not decide("train.epochs=1")
    assert not decide("train.epochs=3", "train.limit_batches=2")
    n_train = len(parts["train"])
    two_passes = -(-2 * n_train // 8)
    assert decide("train.epochs=5", f"train.max_steps={two_passes}")
    assert not decide("train.epochs=5", f"train.max_steps={two_passes - 2}")
    assert decide("train.epochs=3", disk=2 * need) and not decide("train.epochs=3", disk=2 * need - 1)
    assert decide("train.epochs=3", memory=2 * need) and not decide("train.epochs=3", memory=2 * need - 1)
    assert decide("train.epochs=1", "train.decoded_cache=true", disk=0, memory=0)
    assert not decide("train.epochs=3", "train.decoded_cache=false")
    with pytest.raises(ConfigError, match="train.decoded_cache='yes'"):
        decide("train.decoded_cache=yes")
    # the default is auto, and a real two-epoch run builds the caches under paths.cache_dir
    ds = build_datasets(table, make_cfg("train", base + ["train.epochs=2"], tmp_path / "run2"), 32)
    assert isinstance(ds["train"], dc.CachedFaceDataset)
    assert len([p for p in (tmp_path / "cache" / "decoded").iterdir() if p.name != LOCKS]) == 3


def umeyama_svd(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The oracle: Umeyama's general SVD form of the least-squares similarity (preprocess has the closed form)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s_c ** 2).sum() / len(src)
    scale = (sig * d).sum() / var_s
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]]).astype(np.float32)


def test_closed_form_similarity_equals_umeyama_svd():
    from facemac.data.preprocess import ARCFACE_TEMPLATE_112, similarity_transform

    rng = np.random.default_rng(0)
    for _ in range(50):
        src = rng.uniform(0, 200, (5, 2))
        if rng.random() < 0.5:  # near-template points, like real landmarks
            ang, sc = rng.uniform(-0.5, 0.5), rng.uniform(0.3, 3)
            rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
            src = ARCFACE_TEMPLATE_112 @ rot.T * sc + rng.uniform(-50, 50, 2) + rng.normal(0, 1, (5, 2))
        np.testing.assert_allclose(similarity_transform(src, ARCFACE_TEMPLATE_112),
                                   umeyama_svd(src, ARCFACE_TEMPLATE_112), rtol=1e-4, atol=1e-3)


def test_reduced_decode_keeps_landmarks_on_the_template(tmp_path):
    """A 1/4 decode (CelebA-size image -> 32 px) warps the marked landmarks onto the template like a full decode."""
    import cv2

    from facemac.data.preprocess import ARCFACE_TEMPLATE_112, similarity_transform

    lm = np.array([[69, 111], [108, 111], [88, 135], [71, 153], [105, 153]], np.float32)
    img = np.full((218, 178, 3), 40, np.uint8)
    for x, y in lm:
        cv2.circle(img, (int(x), int(y)), 4, (255, 255, 255), -1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 98])
    data = buf.tobytes()
    for size in (32, 64):
        fast, full = Preprocessor("arcface", size, reduced_decode=True), Preprocessor("arcface", size)
        a, b = fast.load(data, "k", lm), full.load(data, "k", lm)
        assert a.shape == b.shape == (size, size, 3)
        m = similarity_transform(lm, ARCFACE_TEMPLATE_112 * size / 112)
        expect = lm @ m[:, :2].T + m[:, 2]  # where the full-resolution warp puts each landmark (LS fit, not exact)
        for out in (a, b):
            g = out[..., 0].astype(float)
            for x, y in expect:  # each landmark blob's brightness centroid sits where the warp maps the landmark
                x0, y0 = int(round(x)), int(round(y))
                win = g[y0 - 3:y0 + 4, x0 - 3:x0 + 4] - 40
                yy, xx = np.mgrid[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
                assert abs((win * xx).sum() / win.sum() - x) < 0.6 and abs((win * yy).sum() / win.sum() - y) < 0.6
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 6
    assert Preprocessor._factor(0.26) == 4 and Preprocessor._factor(0.52) == 2 and Preprocessor._factor(0.57) == 1


def test_corrupt_scan_data_is_listed_by_training_and_the_cache_alike(tmp_path):
    """A CelebA JPEG whose headers are fine but whose scan is garbage: refused in the training path (landmark warp,
    reduced decode, augmentation) and recorded as such in the decoded cache, never trained on as noise."""
    from tests.badimages import _garbage_scan_jpeg

    root = write_celeba_tree(tmp_path / "celeba", n=12)
    (root / "img_align_celeba" / "000003.jpg").write_bytes(_garbage_scan_jpeg())
    table = table_of(root)
    pre = Preprocessor("arcface", 32, reduced_decode=True)
    bad = table.keys.index("000003.jpg")
    plain = collate_faces([FaceDataset(table, pre, build_augment(AUG, seed=1))[i] for i in range(len(table))])
    assert [(table.keys[i], "corrupt JPEG data" in r) for i, r in plain["failures"]] == [("000003.jpg", True)]
    cache = dc.open_or_build(table, pre, tmp_path / "cache", "t", progress=False)
    assert not cache.ok[bad] and "corrupt JPEG data" in cache.reasons[bad]
