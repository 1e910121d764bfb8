"""Procedural demo faces: exact formats, determinism, linked attributes, priors, cache behaviour, visible cues."""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing as mp
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image
from scipy.stats import entropy

from facemac.attributes import CELEBA_ATTRIBUTES
from facemac.data.demo import DEMO_ATTRIBUTES, PROFILES, TARGET_NAMES, DemoData, ensure_demo
from facemac.data.demo.profiles import DRIFT_ATTRIBUTES, IDENTITY_ATTRIBUTES, IMAGE_ATTRIBUTES
from facemac.data.demo.sampling import sample_labels
from facemac.data.preprocess import ARCFACE_TEMPLATE_112
from facemac.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(celeba_identities=30, celeba_images_per_identity=4, target_identities=6, target_images_per_identity=3)
COL = {a: i for i, a in enumerate(DEMO_ATTRIBUTES)}
HAIR = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]
LABEL_FILES = ["celeba/list_attr_celeba.txt", "celeba/list_eval_partition.txt", "celeba/identity_CelebA.txt",
               "celeba/list_landmarks_align_celeba.txt"] + [f"targets/{n}/labels.csv" for n in TARGET_NAMES]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    """A small demo rendered through the process pool (2 workers)."""
    return ensure_demo(tmp_path_factory.mktemp("cache_a"), seed=0, workers=2, progress=False, **SMALL)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_attr(celeba: Path) -> tuple[int, list[str], list[str], np.ndarray]:
    lines = (celeba / "list_attr_celeba.txt").read_text().split("\n")
    assert lines[-1] == "" and all(lines[:-1])
    rows = [ln.split() for ln in lines[2:-1]]
    return int(lines[0]), lines[1].split(" "), [r[0] for r in rows], np.array([[int(v) for v in r[1:]] for r in rows])


# ---------------------------------------------------------------- vocabulary and priors


def test_attribute_vocabulary():
    assert len(DEMO_ATTRIBUTES) == 24 and len(set(DEMO_ATTRIBUTES)) == 24
    assert set(DEMO_ATTRIBUTES) <= set(CELEBA_ATTRIBUTES)
    assert DEMO_ATTRIBUTES[:3] == ("Male", "Young", "Smiling") and DEMO_ATTRIBUTES[-1] == "Rosy_Cheeks"
    assert TARGET_NAMES == ("demo_real_a", "demo_real_b", "demo_synth_a", "demo_synth_b")
    assert set(PROFILES) == {"celeba_demo", *TARGET_NAMES}
    groups = {n: p.group for n, p in PROFILES.items()}
    assert groups == {"celeba_demo": "train", "demo_real_a": "real", "demo_real_b": "real",
                      "demo_synth_a": "synthetic", "demo_synth_b": "synthetic"}


def test_true_rates_hand_computed():
    r = PROFILES["celeba_demo"].true_rates()
    assert list(r) == list(DEMO_ATTRIBUTES)
    # By hand from the documented priors (docs/demo.md).
    assert r["Male"] == pytest.approx(0.5) and r["Young"] == pytest.approx(0.55)
    assert r["Bald"] == pytest.approx(0.5 * (0.55 * 0.2 + 0.45 * 0.5))
    assert r["Gray_Hair"] == pytest.approx(0.55 * 0.9 * 0.06 + 0.45 * 0.75 * 0.45)
    assert r["Mustache"] == pytest.approx(0.5 * 0.45) and r["No_Beard"] == pytest.approx(1 - 0.5 * 0.6)
    assert r["Mouth_Slightly_Open"] == pytest.approx(0.5 * 0.6 + 0.5 * 0.25)
    assert r["Wearing_Lipstick"] == pytest.approx(0.5 * 0.7)
    assert sum(r[c] for c in HAIR) + r["Bald"] == pytest.approx(1.0)


def test_training_priors_are_broad():
    r = PROFILES["celeba_demo"].true_rates()
    for attr, rate in r.items():
        if attr != "No_Beard":  # No_Beard = 1 - (Mustache or Goatee); both of those are in range
            assert 0.15 <= rate <= 0.6, (attr, rate)


def test_kl_real_to_synthetic_exceeds_reverse():
    """Synthetic-like profiles cover less of the space: KL(real||synth) is clearly larger than KL(synth||real)."""
    def kl(p: str, q: str) -> float:
        rp, rq = PROFILES[p].true_rates(), PROFILES[q].true_rates()
        return float(sum(entropy([rp[a], 1 - rp[a]], [rq[a], 1 - rq[a]]) for a in DEMO_ATTRIBUTES))

    for real in ("demo_real_a", "demo_real_b"):
        for synth in ("demo_synth_a", "demo_synth_b"):
            assert kl(real, synth) > 1.5 * kl(synth, real), (real, synth, kl(real, synth), kl(synth, real))
            assert kl(synth, real) > 0.5
    assert kl("demo_real_a", "demo_real_b") < 0.1 * kl("demo_real_a", "demo_synth_a")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_sampled_rates_match_true_rates(name):
    """Empirical rates of a sample agree with the closed form, with identity-clustered binomial tolerance."""
    n_id, k = 1000, 3
    labels, _ = sample_labels(PROFILES[name], seed=3, identities=n_id, images=k)
    true = PROFILES[name].true_rates()
    for attr in DEMO_ATTRIBUTES:
        p = true[attr]
        n_eff = n_id if attr in IDENTITY_ATTRIBUTES else n_id * k  # identity-level traits: one draw per identity
        tol = 4.5 * np.sqrt(p * (1 - p) / n_eff) + 1e-9
        assert abs(labels[:, COL[attr]].mean() - p) <= tol, (name, attr, labels[:, COL[attr]].mean(), p)


def _check_links(labels: np.ndarray) -> None:
    a = {n: labels[:, i].astype(bool) for n, i in COL.items()}
    assert np.array_equal(a["No_Beard"], ~(a["Mustache"] | a["Goatee"]))
    hair = np.stack([a[c] for c in HAIR], 1).sum(1)
    assert np.all(hair[a["Bald"]] == 0) and np.all(hair[~a["Bald"]] == 1)
    assert not np.any(a["Bald"] & a["Bangs"])
    for attr in ("Mustache", "Goatee", "Bald"):
        assert np.all(a["Male"][a[attr]]), attr
    assert not np.any(a["Male"] & a["Wearing_Lipstick"])


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_linked_attributes_in_samples(name):
    labels, _ = sample_labels(PROFILES[name], seed=1, identities=400, images=3)
    _check_links(labels)


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_demo_truth_matches_the_sampler(name):
    """The exact expected mixed share / entropy of each profile against a large sample (identity-level binomial
    tolerance), and the per-image rates implied by the within-identity model equal the profile's true rates."""
    prof, k, n_id = PROFILES[name], 8, 1500
    labels, _ = sample_labels(prof, seed=11, identities=n_id, images=k)
    block = labels.reshape(n_id, k, -1).sum(1)
    truth = prof.within_identity(k)
    for j, attr in enumerate(DEMO_ATTRIBUTES):
        mixed = ((block[:, j] > 0) & (block[:, j] < k)).mean()
        m, _ = truth[attr]
        assert abs(mixed - m) <= 4.5 * np.sqrt(max(m * (1 - m), 1e-3) / n_id), (name, attr, mixed, m)
        rate = sum((prof.male if male else 1 - prof.male) * (prof.young if young else 1 - prof.young) * w * pi
                   for male in (False, True) for young in (False, True)
                   for w, pi in prof.image_probabilities(attr, male, young))
        assert rate == pytest.approx(prof.true_rates()[attr], abs=1e-12), (name, attr)


def test_demo_plants_drift_and_less_variation():
    """Real profiles: identity-level attributes never mix, image-level ones are independent per image. demo_synth_a
    drifts hair colour and skin at a known per-image rate; both synthetic profiles vary image-level attributes less."""
    truth = {n: PROFILES[n].within_identity(8) for n in TARGET_NAMES}
    real = [n for n in TARGET_NAMES if PROFILES[n].group == "real"]
    synth = [n for n in TARGET_NAMES if PROFILES[n].group == "synthetic"]
    for n in real:
        assert PROFILES[n].identity_drift == 0 and PROFILES[n].image_variation == 1
        assert all(truth[n][a][0] == 0 for a in IDENTITY_ATTRIBUTES)
    assert PROFILES["demo_synth_a"].identity_drift > 0
    assert all(truth["demo_synth_a"][a][0] > 0.3 for a in DRIFT_ATTRIBUTES)
    for n in synth:
        assert PROFILES[n].image_variation < 1
        for a in IMAGE_ATTRIBUTES:
            assert max(truth[s][a][0] for s in synth) < min(truth[r][a][0] for r in real), a


def test_drifted_images_show_the_drifted_traits():
    """An image of a drifting identity shows (and is labelled with) another hair colour and skin class."""
    from facemac.data.demo.render import render
    from facemac.data.demo.sampling import drifted, sample_identity, sample_shot, stream

    prof = dataclasses.replace(PROFILES["demo_synth_a"], identity_drift=1.0)
    for i in range(4):
        ident = sample_identity(prof, stream(3, prof.name, i))
        shot = dataclasses.replace(sample_shot(prof, ident, stream(3, prof.name, i, 0)), noise_sigma=0.0)
        shown = drifted(prof, ident, stream(3, "drift", i, 0))
        assert shown.attrs["Pale_Skin"] != ident.attrs["Pale_Skin"]
        assert ident.hair is None or shown.attrs != ident.attrs and sum(shown.attrs[c] for c in HAIR) == 1
        assert {k: v for k, v in shown.attrs.items() if k not in DRIFT_ATTRIBUTES} == \
            {k: v for k, v in ident.attrs.items() if k not in DRIFT_ATTRIBUTES}
        a, _ = render(ident, shot, np.random.default_rng(0))
        b, _ = render(shown, shot, np.random.default_rng(0))
        assert int((np.abs(a.astype(int) - b.astype(int)).max(2) > 25).sum()) > 500


# ---------------------------------------------------------------- on-disk formats


def test_celeba_layout_and_formats(demo):
    celeba = demo.celeba_root
    n_total = SMALL["celeba_identities"] * SMALL["celeba_images_per_identity"]
    count, header, files, values = _read_attr(celeba)
    assert count == n_total == len(files) and header == list(DEMO_ATTRIBUTES)
    assert files == [f"{i:06d}.jpg" for i in range(1, n_total + 1)]
    row = re.compile(r"^\d{6}\.jpg( +-?1){24}$")
    assert all(row.match(ln) for ln in (celeba / "list_attr_celeba.txt").read_text().splitlines()[2:])
    assert set(np.unique(values)) == {-1, 1}
    # The way torchvision and most readers parse it: whitespace-separated, header on line 2, file name as index.
    df = pd.read_csv(celeba / "list_attr_celeba.txt", sep=r"\s+", header=1)
    assert list(df.columns) == list(DEMO_ATTRIBUTES) and list(df.index) == files
    assert np.array_equal(df.to_numpy(), values)

    part = [ln.split(" ") for ln in (celeba / "list_eval_partition.txt").read_text().splitlines()]
    ident = [ln.split(" ") for ln in (celeba / "identity_CelebA.txt").read_text().splitlines()]
    assert [p[0] for p in part] == files == [i[0] for i in ident]
    splits = np.array([int(p[1]) for p in part])
    ids = np.array([int(i[1]) for i in ident])
    assert set(splits) == {0, 1, 2} and np.all(np.diff(splits) >= 0)  # train, then val, then test, like CelebA
    assert set(ids) == set(range(1, SMALL["celeba_identities"] + 1))
    for s in (0, 1, 2):  # identity-disjoint splits
        for t in range(s + 1, 3):
            assert not set(ids[splits == s]) & set(ids[splits == t])
    assert [len(set(ids[splits == s])) for s in (0, 1, 2)] == [24, 3, 3]

    lm_lines = (celeba / "list_landmarks_align_celeba.txt").read_text().splitlines()
    assert int(lm_lines[0]) == n_total
    assert lm_lines[1] == ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
                           "rightmouth_x rightmouth_y")
    assert [ln.split()[0] for ln in lm_lines[2:]] == files
    pts = np.array([[int(v) for v in ln.split()[1:]] for ln in lm_lines[2:]]).reshape(-1, 5, 2)
    # Aligned geometry: the true points sit near the ArcFace template, moved only by the small pose nuisance.
    assert np.abs(pts.mean(0) - ARCFACE_TEMPLATE_112).max() < 4.0
    assert np.abs(pts - ARCFACE_TEMPLATE_112).max() < 12.0
    assert np.all(pts[:, 0, 0] < pts[:, 1, 0]) and np.all(pts[:, 3, 0] < pts[:, 4, 0])

    for f in files[:: max(1, n_total // 10)]:
        with Image.open(celeba / "img_align_celeba" / f) as im:
            assert im.format == "JPEG" and im.size == (112, 112) and im.mode == "RGB"


def test_identity_level_attributes_are_fixed(demo):
    _, _, files, values = _read_attr(demo.celeba_root)
    ident = dict(ln.split(" ") for ln in (demo.celeba_root / "identity_CelebA.txt").read_text().splitlines())
    ids = np.array([int(ident[f]) for f in files])
    labels = (values > 0).astype(np.uint8)
    _check_links(labels)
    id_cols = [COL[a] for a in IDENTITY_ATTRIBUTES]
    for i in np.unique(ids):
        block = labels[ids == i]
        assert len(block) == SMALL["celeba_images_per_identity"]
        assert np.all(block[:, id_cols] == block[0, id_cols])
    # Image-level attributes do vary within identities somewhere.
    img_cols = [COL[a] for a in ("Smiling", "Eyeglasses", "Blurry")]
    assert any(len(np.unique(labels[ids == i][:, c])) > 1 for i in np.unique(ids) for c in img_cols)


def test_target_layout_and_labels(demo):
    assert set(demo.targets) == set(TARGET_NAMES)
    for name, root in demo.targets.items():
        df = pd.read_csv(root / "labels.csv", dtype={"identity": str})
        assert list(df.columns) == ["path", "identity", *DEMO_ATTRIBUTES]
        assert len(df) == SMALL["target_identities"] * SMALL["target_images_per_identity"]
        assert set(np.unique(df[list(DEMO_ATTRIBUTES)].to_numpy())) <= {0, 1}
        assert (df["path"].str.split("/").str[0] == df["identity"]).all()
        assert df["identity"].nunique() == SMALL["target_identities"]
        for rel in df["path"]:
            assert re.fullmatch(r"id\d{5}/\d+\.jpg", rel) and (root / rel).is_file()
        on_disk = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
        assert on_disk == sorted(df["path"])
        # Ground truth equals the sampling model's labels for this seed (the fast path tests rely on).
        expect, _ = sample_labels(PROFILES[name], 0, SMALL["target_identities"], SMALL["target_images_per_identity"])
        assert np.array_equal(df[list(DEMO_ATTRIBUTES)].to_numpy(), expect)
        _check_links(expect)


def test_targets_are_stored_as_a_face_recognition_aligner_crops_them():
    """Training images keep their pose nuisance (CelebA-like, warped by their landmarks at training time); target
    images are drawn through the aligner's warp (a 5-point fit to the detected points), as FR datasets store faces:
    their true points sit on the template up to the attribute-moved features (smile) and the detector noise."""
    from facemac.data.demo.render import render
    from facemac.data.demo.sampling import sample_identity, sample_shot, stream

    profile = PROFILES["demo_real_a"]
    posed_dev, aligned_dev = [], []
    for i in range(20):
        ident = sample_identity(profile, stream(0, profile.name, i))
        shot = sample_shot(profile, ident, stream(0, profile.name, i, 0))
        _, posed = render(ident, shot, np.random.default_rng(0))
        _, aligned = render(ident, shot, np.random.default_rng(0), detect_noise=np.zeros((5, 2)))
        # a least-squares similarity maps the points' centroid onto the template's exactly
        np.testing.assert_allclose(aligned.mean(0), ARCFACE_TEMPLATE_112.mean(0), atol=1e-3)
        posed_dev.append(np.abs(posed - ARCFACE_TEMPLATE_112).max())
        aligned_dev.append(np.abs(aligned - ARCFACE_TEMPLATE_112).max())
    assert max(aligned_dev) < 3.5 < max(posed_dev) and np.median(aligned_dev) < 0.5 * np.median(posed_dev)


def test_detector_noise_touches_only_the_targets(monkeypatch):
    """The aligner's noise has a random stream of its own: the training images' bytes do not depend on it."""
    import facemac.data.demo.generate as gen

    def chunk(profile, tmp):
        paths = ((f"{profile}_0.jpg", f"{profile}_1.jpg"),)
        gen.render_chunk(gen.Chunk(0, profile, 0, paths, str(tmp)))
        return [(Path(tmp) / p).read_bytes() for p in paths[0]]

    import tempfile

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        before = chunk(gen.TRAIN_PROFILE, a) + chunk("demo_synth_a", a)
        monkeypatch.setattr(gen, "DETECTOR_NOISE_PX", 3.0)
        after = chunk(gen.TRAIN_PROFILE, b) + chunk("demo_synth_a", b)
    assert before[:2] == after[:2] and before[2:] != after[2:]


def test_manifest_records_true_rates(demo):
    m = demo.manifest
    assert m["complete"] and m["seed"] == 0 and m["params"]["celeba_identities"] == SMALL["celeba_identities"]
    for name, prof in PROFILES.items():
        assert m["profiles"][name]["true_rates"] == pytest.approx(prof.true_rates())
        assert m["profiles"][name]["group"] == prof.group


# ---------------------------------------------------------------- determinism and cache


def test_deterministic_across_worker_counts_and_seeds(demo, tmp_path):
    same = ensure_demo(tmp_path / "b", seed=0, workers=1, progress=False, **SMALL)
    assert same.root.name == demo.root.name  # same digest
    a, b = _tree_digest(demo.root), _tree_digest(same.root)
    assert a == b  # every byte: label files, labels.csv, images, manifest
    other = ensure_demo(tmp_path / "c", seed=1, workers=1, progress=False, **SMALL)
    assert other.root.name != demo.root.name
    for rel in LABEL_FILES:
        if rel.endswith(("list_eval_partition.txt",)):
            continue
        assert (other.root / rel).read_bytes() != (demo.root / rel).read_bytes(), rel


def test_cache_reuse_and_regeneration(tmp_path, monkeypatch):
    import facemac.data.demo.cache as cache

    small = dict(SMALL, celeba_identities=12, target_identities=2)
    first = ensure_demo(tmp_path, workers=1, progress=False, **small)
    assert first.root.parent == tmp_path / "demo" and (first.root / "demo.json").is_file()

    def boom(*a, **k):
        raise AssertionError("should have reused the cache")

    monkeypatch.setattr(cache, "generate", boom)
    assert ensure_demo(tmp_path, workers=1, progress=False, **small).root == first.root
    with pytest.raises(AssertionError, match="reused"):  # a size change means new data
        ensure_demo(tmp_path, workers=1, progress=False, **dict(small, target_images_per_identity=2))
    # The failed generation left neither a final folder nor a temporary one behind.
    assert sorted(p.name for p in (tmp_path / "demo").iterdir() if not p.name.endswith(".lock")) == [first.root.name]
    monkeypatch.undo()
    second = ensure_demo(tmp_path, workers=1, progress=False, **dict(small, target_images_per_identity=2))
    assert second.root != first.root and second.root.parent == first.root.parent
    assert len(pd.read_csv(second.targets["demo_real_a"] / "labels.csv")) == 2 * 2


def test_incomplete_folder_is_rebuilt(tmp_path):
    small = dict(SMALL, celeba_identities=12, target_identities=2)
    data = ensure_demo(tmp_path, workers=1, progress=False, **small)
    (data.root / "demo.json").unlink()  # looks like a half-written tree
    (data.root / "celeba" / "list_attr_celeba.txt").write_text("junk")
    again = ensure_demo(tmp_path, workers=1, progress=False, **small)
    assert again.root == data.root and again.manifest["complete"]
    assert (again.celeba_root / "list_attr_celeba.txt").read_text().startswith("48\n")


def _ensure_in_child(args: tuple[str, dict]) -> str:
    cache_dir, params = args
    return str(ensure_demo(cache_dir, workers=1, progress=False, **params).root)


def test_concurrent_generation(tmp_path):
    small = dict(SMALL, celeba_identities=12, target_identities=2)
    with mp.get_context("spawn").Pool(2) as pool:
        roots = pool.map(_ensure_in_child, [(str(tmp_path), small)] * 2)
    assert roots[0] == roots[1]
    left = sorted(p.name for p in (tmp_path / "demo").iterdir() if not p.name.endswith(".lock"))
    assert left == [Path(roots[0]).name]
    single = ensure_demo(tmp_path / "single", workers=1, progress=False, **small)
    assert _tree_digest(Path(roots[0])) == _tree_digest(single.root)


def test_config_file_drives_ensure_demo(tmp_path):
    cfg = OmegaConf.load(ROOT / "conf" / "demo" / "default.yaml")
    assert cfg.seed == 0 and cfg.celeba_identities * cfg.celeba_images_per_identity >= 10000
    cfg.merge_with(dict(SMALL, celeba_identities=12, target_identities=2, workers=1))
    data = ensure_demo(tmp_path, progress=False, **cfg)
    assert data.manifest["params"]["celeba_identities"] == 12


def test_bad_config_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="celeba_identites"):
        ensure_demo(tmp_path, celeba_identites=3)
    with pytest.raises(ConfigError, match="demo.target_identities"):
        ensure_demo(tmp_path, target_identities=0)


def test_import_is_light():
    code = "import sys, facemac.data.demo; bad = {'torch', 'cv2', 'timm'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_cli_reuses_cache(demo):
    cache_dir = demo.root.parent.parent
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    out = subprocess.run([sys.executable, "-m", "facemac.data.demo", "--out", str(cache_dir), *args], check=True,
                         cwd=ROOT, capture_output=True, text=True).stdout
    assert str(demo.root) in out and str(demo.celeba_root) in out


# ---------------------------------------------------------------- the cues are in the pixels


def _variant(ident, shot, attr: str, value: bool):
    """The same face with one attribute set to value (and whatever it is linked to made consistent)."""
    from facemac.data.demo import sampling as S

    ia, sa = dict(ident.attrs), dict(shot.attrs)
    ident, shot = dataclasses.replace(ident, attrs=ia), dataclasses.replace(shot, attrs=sa, noise_sigma=0.0)
    if attr in sa:
        sa[attr] = value
        if attr == "Wearing_Lipstick":
            ia["Male"] = False
        return ident, shot
    if attr in HAIR or attr == "Bald":
        for c in HAIR:
            ia[c] = False
        bald = (attr == "Bald") == value
        ia["Bald"] = bald
        if bald:
            ia["Male"], ia["Bangs"], ident.hair = True, False, None
        else:
            colour = attr if (attr in HAIR and value) else ("Gray_Hair" if attr == "Black_Hair" else "Black_Hair")
            ia[colour] = True
            ident.hair = np.array(S.HAIR_RGB[colour], float)
        return ident, shot
    ia[attr] = value
    if attr == "No_Beard":
        ia["Mustache"] = ia["Goatee"] = not value
    if attr in ("Mustache", "Goatee", "No_Beard"):
        ia["Male"] = True
        ia["No_Beard"] = not (ia["Mustache"] or ia["Goatee"])
    if attr == "Bangs" and ident.hair is None:
        ia["Bald"], ia["Black_Hair"], ident.hair = False, True, np.array(S.HAIR_RGB["Black_Hair"], float)
    if attr == "Pale_Skin":
        ident.skin = np.array(S.PALE_SKIN if value else S.SKIN_LIGHT, float)
    if attr == "Chubby":
        ident.width = 35.0 + (11.0 if value else 0.0)
    return ident, shot


@pytest.mark.parametrize("attr", DEMO_ATTRIBUTES)
def test_every_attribute_changes_many_pixels_at_64px(attr):
    """Flipping one attribute on the same face changes a sizeable patch even after shrinking to 64 px."""
    import cv2

    from facemac.data.demo.render import render
    from facemac.data.demo.sampling import sample_identity, sample_shot, stream

    prof = PROFILES["celeba_demo"]
    changed = []
    for i in range(6):
        ident = sample_identity(prof, stream(5, prof.name, i))
        shot = sample_shot(prof, ident, stream(5, prof.name, i, 0))
        shot = dataclasses.replace(shot, attrs=dict(shot.attrs, Blurry=False))
        imgs = []
        for value in (True, False):
            a, s = _variant(ident, shot, attr, value)
            img, _ = render(a, s, np.random.default_rng(0))
            imgs.append(cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA).astype(int))
        changed.append(int((np.abs(imgs[0] - imgs[1]).max(2) > 25).sum()))
    assert min(changed) >= 30, (attr, changed)  # at least ~5x6 pixels at 64 px on every face tried


def test_contact_sheet_small(tmp_path):
    from facemac.data.demo.contact_sheet import contact_sheet

    sheet = contact_sheet(seed=0, per_side=1, tile=32, identities=40)
    assert sheet.dtype == np.uint8 and sheet.shape[2] == 3 and sheet.shape[0] > 24 * 32
