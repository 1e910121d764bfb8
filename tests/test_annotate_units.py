"""Unit checks of the annotation pieces: reliability formula, MC dropout, shard plan, Parquet schema, ckpt=, targets."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from facemac.annotation.ckpt_ref import resolve_checkpoint
from facemac.annotation.inference import Annotator
from facemac.annotation.reliability import reliability_from_samples, set_mc_dropout
from facemac.annotation.shards import keys_sha256, plan_shards, shards_for_rank
from facemac.annotation.targets import resolve_targets as resolve_typed
from facemac.settings import build_settings
from facemac.annotation_table import build_part, write_part
from facemac.errors import ConfigError
from facemac.runs import mark_done
from facemac.tracking import NullTracker
from tests.annotate_helpers import ATTRS, make_checkpoint


def resolve_targets(cfg):
    """The stage resolves targets from its typed settings; these tests compose a config first."""
    return resolve_typed(build_settings(cfg, "annotate"))


def test_reliability_matches_hand_computation():
    # attribute 0: p = .2 .4 .6 .8 → mean .5, squared deviations .09 .01 .01 .09 → var .05, std sqrt(.05)
    # attribute 1: all equal → 1; attribute 2: half 0 half 1 → std .5 → 0
    samples = torch.tensor([[[0.2, 0.7, 0.0]], [[0.4, 0.7, 1.0]], [[0.6, 0.7, 0.0]], [[0.8, 0.7, 1.0]]])
    rel = reliability_from_samples(samples)
    assert rel.shape == (1, 3)
    assert rel[0, 0].item() == pytest.approx(1 - 2 * math.sqrt(0.05), abs=1e-6)  # 0.5527864
    assert rel[0, 1].item() == pytest.approx(1.0, abs=1e-6)
    assert rel[0, 2].item() == pytest.approx(0.0, abs=1e-6)


def test_reliability_bounded_for_any_probabilities():
    g = torch.Generator().manual_seed(0)
    rel = reliability_from_samples(torch.rand(7, 50, 5, generator=g) ** 3)
    assert (rel >= 0).all() and (rel <= 1).all()
    with pytest.raises(ValueError):
        reliability_from_samples(torch.rand(1, 3, 2))


def test_mc_dropout_switches_only_dropout_layers():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Dropout(0.0)).eval()
    set_mc_dropout(net, True)
    assert net[2].training and not net[1].training and not net[0].training and not net[3].training
    set_mc_dropout(net, False)
    assert not any(m.training for m in net.modules())


def test_head_only_fast_path_equals_full_mc_passes(tmp_path):
    """Features once + K stochastic heads draws the very same dropout masks as K full passes (same seed)."""
    ck = make_checkpoint(tmp_path / "m.pt", drop_rate=0.5)
    ann = Annotator.from_checkpoint(ck, torch.device("cpu"), mc_samples=5)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(3)
    p_fast, r_fast = ann.predict(images)
    import facemac.annotation.inference as inf
    orig = inf._head_only_dropout
    inf._head_only_dropout = lambda model: False
    try:
        torch.manual_seed(3)
        p_full, r_full = ann.predict(images)
    finally:
        inf._head_only_dropout = orig
    torch.testing.assert_close(p_fast, p_full)
    torch.testing.assert_close(r_fast, r_full)
    assert (r_fast < 1).any()  # dropout really was active
    assert not any(m.training for m in ann.model.modules())  # and is off again


def test_shard_plan_covers_every_row_once():
    plan = plan_shards(23, 5)
    assert plan == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert shards_for_rank(5, 0, 2) == [0, 2, 4] and shards_for_rank(5, 1, 2) == [1, 3]
    with pytest.raises(ConfigError, match="shard_size"):
        plan_shards(3, 0)
    assert keys_sha256(["a", "b"]) != keys_sha256(["b", "a"])


def test_part_schema_and_atomic_write(tmp_path):
    probs = np.array([[0.1, 0.5, 0.9], [0.2, 0.3, 0.4]], dtype=np.float64)
    table = build_part(["x/1.png", "2.png"], ["x", None], probs, ATTRS, reliability=np.ones((2, 3)))
    out = write_part(table, tmp_path / "part-00000.parquet")
    back = pq.read_table(out)
    assert back.column_names == ["path", "identity", *ATTRS, *[f"reliability:{a}" for a in ATTRS]]
    assert all(str(back.schema.field(a).type) == "float" for a in ATTRS)
    assert back.column("identity").to_pylist() == ["x", None]
    np.testing.assert_allclose(back.column("Smiling").to_numpy(), [0.5, 0.3], rtol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["part-00000.parquet"]  # no temporary left behind


def test_resolve_checkpoint_forms(tmp_path):
    ck = make_checkpoint(tmp_path / "explicit.pt")
    assert resolve_checkpoint(str(ck), tmp_path)[0] == ck
    run = tmp_path / "logs" / "train" / "runs" / "r1"
    best = make_checkpoint(run / "checkpoints" / "best.pt")
    with pytest.raises(ConfigError, match="latest"):  # not finished yet
        resolve_checkpoint("latest", tmp_path / "logs")
    mark_done(run)
    path, how = resolve_checkpoint("latest", tmp_path / "logs")
    assert path == best and "latest" in how
    assert resolve_checkpoint(str(run), tmp_path)[0] == best  # a run folder works too
    with pytest.raises(ConfigError, match="logger=wandb"):
        resolve_checkpoint("me/facemac/model-abc:v3", tmp_path, NullTracker())
    with pytest.raises(ConfigError, match="no such file"):
        resolve_checkpoint(str(tmp_path / "nope.pt"), tmp_path)


def test_targets_config(make_cfg):
    specs = resolve_targets(make_cfg("annotate", ["logger=none"]))
    assert [s.name for s in specs] == ["demo_real_a", "demo_real_b", "demo_synth_a", "demo_synth_b"]
    assert [s.group for s in specs] == ["real", "real", "synthetic", "synthetic"]
    assert all(s.geometry == "arcface_112" and s.root is None for s in specs)
    with pytest.raises(ConfigError, match=r"targets\.bupt_balancedface\.root"):
        resolve_targets(make_cfg("annotate", ["targets=paper"]))
    cfg = make_cfg("annotate", ["targets=paper", "annotate.only=[idiff_face]", "targets.idiff_face.root=/x"])
    (spec,) = resolve_targets(cfg)
    assert (spec.name, spec.group, spec.root) == ("idiff_face", "synthetic", "/x")
    cfg = make_cfg("annotate", ["targets=casia", "+targets/dataset@targets.mine=dcface", "targets.mine.root=/m",
                                "targets.casia_webface.root=/c"])
    assert {s.name: s.format for s in resolve_targets(cfg)} == {"casia_webface": "recordio", "mine": "folders"}
    with pytest.raises(ConfigError, match="annotate.only"):
        resolve_targets(make_cfg("annotate", ["annotate.only=[nope]"]))


@pytest.mark.parametrize("targets", ["paper", "casia", "dcface"])
def test_one_rule_for_target_roots_targets_root_else_roots_name(make_cfg, targets):
    """#22 item 4: the error advised `conf/local/default.yaml` (read as targets.<name>.root there, which the docs say
    not to do) while only experiment=paper read `roots:`. Now every target reads roots.<name>, in code, for any set,
    a renamed file and a one-off entry, and the error states that rule."""
    names = [s for s in make_cfg("annotate", [f"targets={targets}"]).targets]
    with pytest.raises(ConfigError) as e:
        resolve_targets(make_cfg("annotate", [f"targets={targets}"]))
    first = names[0]
    assert str(e.value) == (f"targets.{first}.root is not set: pass targets.{first}.root=/path/to/{first}, or name it "
                            f"once for this machine as roots.{first}: /path/to/{first} in conf/local/default.yaml "
                            "(conf/local/README.md)")
    roots = [f"+roots.{n}=/data/{n}" for n in names]
    specs = resolve_targets(make_cfg("annotate", [f"targets={targets}", *roots, f"targets.{first}.root=/cli"]))
    assert [(s.name, s.root) for s in specs] == [(first, "/cli")] + [(n, f"/data/{n}") for n in names[1:]]


def test_renamed_and_one_off_targets_read_their_own_roots_entry(make_cfg):
    cfg = make_cfg("annotate", ["targets=demo", "+targets/dataset@targets.mine=dcface", "+roots.mine=/m",
                                "+targets.x={format: folders, group: synthetic}", "+roots.x=/x",
                                "annotate.only=[mine,x,demo_real_a]"])
    assert [(s.name, s.root) for s in resolve_targets(cfg)] == [("mine", "/m"), ("x", "/x"), ("demo_real_a", None)]
    with pytest.raises(ConfigError, match=r"^targets\.x\.root is not set: .* roots\.x: "):
        resolve_targets(make_cfg("annotate", ["+targets.x={format: folders, group: synthetic}", "annotate.only=[x]"]))


def _compile_with(monkeypatch, backend):
    """Make Annotator's torch.compile use ``backend`` (fast, no C++ toolchain) instead of inductor."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real(model, backend=backend, **kw))


def test_compiled_annotator_pads_short_batches_instead_of_recompiling(tmp_path, monkeypatch):
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    _compile_with(monkeypatch, counter)
    ck = make_checkpoint(tmp_path / "m.pt")
    plain = Annotator.from_checkpoint(ck, torch.device("cpu"))
    fast = Annotator.from_checkpoint(ck, torch.device("cpu"), compile=True)
    g = torch.Generator().manual_seed(0)
    for n in (8, 3, 8, 1, 5):  # the last batch of a shard, or one with unreadable images, is shorter
        x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        p, r = fast.predict(x)
        assert p.shape == (n, len(ATTRS)) and r is None
        torch.testing.assert_close(p, plain.predict(x)[0], atol=1e-6, rtol=1e-6)
    assert counter.frame_count == 1 and fast.compiled_batch == 8  # one graph, built for the first batch size


def test_inference_threads_share_one_compiled_graph(tmp_path, monkeypatch):
    """With torch.compile, the thread engine compiles once (a warm-up at the full batch size, before any thread
    calls the model) and every thread then runs that graph: one frame, eager numbers, batches handed back in order."""
    from torch.utils.data import Dataset
    from torch._dynamo.testing import CompileCounter

    from facemac.annotation.feed import thread_results

    torch._dynamo.reset()
    counter = CompileCounter()
    _compile_with(monkeypatch, counter)
    ck = make_checkpoint(tmp_path / "m.pt")
    plain = Annotator.from_checkpoint(ck, torch.device("cpu"), amp="off")
    fast = Annotator.from_checkpoint(ck, torch.device("cpu"), amp="off", compile=True)
    images = torch.randint(0, 256, (23, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))

    class Items(Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            if i == 7:
                return {"index": i, "ok": False, "reason": "broken"}
            return {"index": i, "ok": True, "image": images[i], "labels": torch.zeros(1), "mask": torch.zeros(1)}

    batches = [list(range(s, min(s + 6, 23))) for s in range(0, 23, 6)]  # 6, 6, 6, 5
    results = list(thread_results(Items(), batches, fast, replicas=3))
    assert counter.frame_count == 1 and fast.compiled_batch == 6
    assert [r.index.tolist() for r in results] == [[i for i in b if i != 7] for b in batches]
    assert results[1].failures == [(7, "broken")]
    for r in results:
        torch.testing.assert_close(r.probs, plain.predict(images[r.index])[0], atol=1e-6, rtol=1e-6)


def test_compile_failure_falls_back_to_the_eager_model(tmp_path, monkeypatch, caplog):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C++ compiler found")

    torch._dynamo.reset()
    _compile_with(monkeypatch, broken_backend)
    ck = make_checkpoint(tmp_path / "m.pt")
    plain = Annotator.from_checkpoint(ck, torch.device("cpu"))
    fast = Annotator.from_checkpoint(ck, torch.device("cpu"), compile=True)
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with caplog.at_level("WARNING"):
        p, _ = fast.predict(x)
    assert "torch.compile failed" in caplog.text and "no C++ compiler" in caplog.text
    torch.testing.assert_close(p, plain.predict(x)[0])
    assert fast.eager_model is None and fast.model is fast.plain_model  # eager from now on, no retry per batch
    torch.testing.assert_close(fast.predict(x[:2])[0], p[:2])


def test_compile_auto_turns_on_for_large_runs_only():
    from facemac.annotation.inference import COMPILE_AUTO_MIN_IMAGES, resolve_compile

    assert resolve_compile("auto", COMPILE_AUTO_MIN_IMAGES) and not resolve_compile("auto", COMPILE_AUTO_MIN_IMAGES - 1)
    assert resolve_compile(True, 1) and not resolve_compile(False, 10**9)
    with pytest.raises(ConfigError, match="annotate.compile"):
        resolve_compile("yes", 10)
