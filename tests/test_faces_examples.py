"""The faces behind the numbers: picks match a sorted oracle, strips show exactly the crops the MAC saw for the
report's drivers, gallery pages hold every attribute sorted by probability, unreachable images are a note."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facemac.analysis.examples import driver_attributes, strip_file
from facemac.analysis.run import run
from facemac.errors import ConfigError
from facemac.faces import load_crops
from facemac.faces.picks import pick_faces
from facemac.faces.strips import DatasetStrip, tile_origin
from tests.annotation_fixtures import write_annotation_dir
from tests.faces_fixtures import write_face_folders, write_faces_table

ATTRS = ["Smiling", "Goatee", "Eyeglasses"]


def _oracle(frame: pd.DataFrame, a: str, t: float, kind: str, k: int) -> list[str]:
    """The picks by sorting the whole table (ties: the earlier row)."""
    f = frame.assign(row=np.arange(len(frame)))
    if kind == "top":
        f = f[f[a] > t].sort_values([a, "row"], ascending=[False, True])
    elif kind == "low_positive":
        f = f[f[a] > t].sort_values([a, "row"])
    elif kind == "near":
        f = f.assign(d=(f[a].astype(np.float64) - t).abs()).sort_values(["d", "row"])
    else:
        f = f[f[a] <= t].sort_values([a, "row"])
    return list(f.path[:k])


def test_streamed_picks_match_a_sorted_oracle(tmp_path):
    rng = np.random.default_rng(3)
    probs = [rng.random((n, 3)).astype(np.float32) for n in (37, 5, 58)]
    probs[1][:, 1] = 0.25  # ties
    probs[2][:, 2] = np.nan  # unknown values never picked
    thr = {"a": 0.6, "b": 0.3, "c": 0.5}
    d = write_annotation_dir(tmp_path / "t", "t", "real", list(thr), [(p, None) for p in probs], thresholds=thr)
    frame = pd.concat([pd.read_parquet(p) for p in sorted(d.glob("part-*.parquet"))], ignore_index=True)
    got = pick_faces(sorted(d.glob("part-*.parquet")), thr, per_kind=6, batch_size=7)
    for a, t in thr.items():
        for kind, picks in got[a].kinds.items():
            assert [p.path for p in picks] == _oracle(frame[~frame[a].isna()], a, t, kind, 6), (a, kind)
            assert all(np.isclose(p.probability, frame.set_index("path").loc[p.path, a]) for p in picks)
    order = [p.probability for p in got["a"].sorted_by_probability()]
    assert order == sorted(order, reverse=True) and len(order) == len({p.path for p in got["a"].sorted_by_probability()})


def test_drivers_are_taken_in_turn_from_each_pairs_list():
    rows = []
    for (p, q), kl in {("R", "S"): [5, 4, 3, 0, 0], ("R2", "S"): [0, 0, 1, 9, 8]}.items():
        for a, v in zip("abcde", kl):
            rows += [{"p": p, "q": q, "attribute": a, "kl": v}, {"p": q, "q": p, "attribute": a, "kl": v}]
    kl = pd.DataFrame(rows)
    assert driver_attributes(kl, [("R", "S"), ("R2", "S")], 3, list("abcde")) == ["a", "d", "b"]
    assert driver_attributes(kl, [("R", "S")], 10, list("abc")) == ["a", "b", "c"]
    assert driver_attributes(kl, [("R", "S")], 0, list("abc")) == []


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Two datasets with images (real, synthetic) whose Smiling rates differ most, and one whose images are gone."""
    base = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    thr = {"Smiling": 0.5, "Goatee": 0.4, "Eyeglasses": 0.6}
    ann = base / "annotations"
    out = {}
    for name, group, smile in (("real_x", "real", 0.2), ("synth_y", "synthetic", 0.8), ("gone_z", "synthetic", 0.5)):
        root = base / "images" / name
        keys = write_face_folders(root, identities=4, images=5, seed=len(out))
        p = rng.random((len(keys), 3))
        p[:, 0] = np.clip(rng.normal(smile, 0.25, len(keys)), 0, 1)
        write_faces_table(ann / name, root, name, group, ATTRS, p, thr)
        out[name] = (root, keys)
    import shutil

    shutil.rmtree(out["gone_z"][0])
    return ann, out


def _tile(img: np.ndarray, blocks, block: int, row: int, col: int, size: int) -> np.ndarray:
    x, y = tile_origin(blocks, size, block, row, col)
    return img[y:y + size, x:x + size]


def test_analysis_draws_the_drivers_faces_and_a_gallery_per_dataset(make_cfg, faces, tmp_path):
    ann, images = faces
    out = tmp_path / "run"
    res = run(make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.n_boot=0", "analyze.pooled=false",
                                   "analyze.examples.attributes=2", "analyze.examples.per_row=3",
                                   "analyze.examples.size=48", "analyze.examples.gallery_per_attribute=2"],
                       output_dir=out))
    ex = res["examples"]
    assert list(ex.strips) == driver_attributes(res["tables"].kl_attributes, [("real_x", "synth_y"),
                                                                            ("real_x", "gone_z")], 2, ATTRS)
    assert "Smiling" in ex.strips and ex.seconds < 5
    report = (out / "report.md").read_text()
    for a, path in ex.strips.items():
        assert path == out / "figures" / strip_file(a) and f"![faces behind {a}](figures/{strip_file(a)})" in report
    # the strips are the report's drivers: each pair's driver table, taken in turn
    tables = re.findall(r"### (\S+) vs (\S+)\n.*?\| attribute \|[^\n]*\n\|[-|]+\n((?:\|[^\n]*\n)+)", report, re.S)
    listed = [[row.split("|")[1].strip() for row in rows.strip().splitlines()] for _, _, rows in tables]
    assert len(listed) == 2 and all(len(x) == 3 for x in listed)  # two real/synthetic pairs, top_k = 3 attributes
    assert list(ex.strips) == list(dict.fromkeys(x for tier in zip(*listed) for x in tier))[:2]
    assert re.search(r"gone_z: no faces shown, its images are not at .*gone_z.*analyze\.examples\.roots", report)
    assert "gallery/real_x.html" in report and "gone_z" not in ex.galleries
    assert "[real_x](gallery/real_x.html#Smiling) · [synth_y](gallery/synth_y.html#Smiling)" in report
    # the first face of real_x's Smiling strip is exactly the crop of its most confident positive
    frame = pd.concat([pd.read_parquet(p) for p in sorted((ann / "real_x").glob("part-*.parquet"))])
    top = frame[frame.Smiling > 0.5].sort_values("Smiling", ascending=False).path.iloc[0]
    strip = np.asarray(Image.open(ex.strips["Smiling"]).convert("RGB"))
    (crop,) = load_crops(ann / "real_x", [top], size=48)
    blocks = [DatasetStrip("real_x", rows=[None] * 3)]  # real datasets first
    assert np.array_equal(_tile(strip, blocks, 0, 0, 0, 48), crop)
    least = frame[frame.Smiling > 0.5].sort_values("Smiling").path.iloc[0]
    assert np.array_equal(_tile(strip, blocks, 0, 1, 0, 48), load_crops(ann / "real_x", [least], size=48)[0])
    # synth_y's block follows gone_z's note (synthetic datasets in input order): its first face is its top positive
    ys = pd.concat([pd.read_parquet(p) for p in sorted((ann / "synth_y").glob("part-*.parquet"))])
    top_y = ys[ys.Smiling > 0.5].sort_values("Smiling", ascending=False).path.iloc[0]
    blocks += [DatasetStrip("gone_z"), DatasetStrip("synth_y", rows=[None] * 3)]
    assert np.array_equal(_tile(strip, blocks, 2, 0, 0, 48), load_crops(ann / "synth_y", [top_y], size=48)[0])
    # the gallery: every attribute, faces sorted by probability, images on disk
    page = (out / "gallery" / "real_x.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', page,
                                re.S).group(1))
    assert [a["name"] for a in data["attributes"]] == ATTRS
    for a in data["attributes"]:
        ps = [f["p"] for f in a["faces"]]
        assert ps == sorted(ps, reverse=True) and 0 < len(ps) <= 4 * 2
        assert a["threshold"] == {"Smiling": 0.5, "Goatee": 0.4, "Eyeglasses": 0.6}[a["name"]]
        want = set(_oracle(frame, a["name"], a["threshold"], "top", 2) + _oracle(frame, a["name"], a["threshold"],
                                                                                  "bottom", 2))
        assert want <= {f["path"] for f in a["faces"]}
        for f in a["faces"]:
            assert (out / "gallery" / f["img"]).is_file()
    assert (out / "gallery" / "assets" / "gallery.js").is_file() and 'src="assets/gallery.js"' in page


def test_moved_images_are_found_through_roots_and_bad_keys_are_named(make_cfg, faces, tmp_path):
    ann, images = faces
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(images["real_x"][0], moved)
    shutil.rmtree(moved / "id0")  # a few faces unreadable now: skipped and counted
    plain = write_annotation_dir(tmp_path / "plain", "plain", "synthetic", ATTRS,  # no record of its crop
                                 [(np.random.default_rng(5).random((9, 3)).astype(np.float32), None)])
    res = run(make_cfg("analyze", ["logger=none", f"inputs=[{ann / 'real_x'},{ann / 'synth_y'},{plain}]",
                                   "analyze.n_boot=0",
                                   f"analyze.examples.roots={{real_x: {moved}}}", "analyze.examples.gallery=false",
                                   "analyze.examples.attributes=1"], output_dir=tmp_path / "r"))
    assert len(res["examples"].strips) == 1 and not res["examples"].galleries
    assert any(re.match(r"real_x: \d+ of \d+ faces picked could not be read", n) for n in res["examples"].notes)
    assert any(re.match(r"plain: no faces shown \(.*does not record the model's crop", n)
               for n in res["examples"].notes)
    with pytest.raises(ConfigError, match=r"analyze\.examples\.roots: \['nope'\]"):
        run(make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.examples.roots={nope: /x}"],
                     output_dir=tmp_path / "r2"))
    with pytest.raises(ConfigError, match=r"analyze\.examples\.per_row=0"):
        run(make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.examples.per_row=0"],
                     output_dir=tmp_path / "r3"))
    off = run(make_cfg("analyze", ["logger=none", f"annotations={ann}", "analyze.n_boot=0",
                                   "analyze.examples.enabled=false"], output_dir=tmp_path / "r4"))
    assert not off["examples"].strips and not (tmp_path / "r4" / "gallery").exists()
