"""The pipeline plans three stage runs in one experiment folder, each fed the previous one's output explicitly."""

import pytest

from facemac.errors import ConfigError
from facemac.pipeline import plan


def test_plan_routes_overrides_and_chains_outputs_explicitly(tmp_path):
    p = plan(["experiment=demo", "seed=3", "train.epochs=2", "annotate:annotate.batch_size=8", "analyze.n_boot=7",
              "targets=casia", "targets.casia_webface.root=/x"], root=tmp_path / "exp")
    cmd = {s: c[3:] for s, c in p.commands.items()}
    assert [c[1:3] for c in p.commands.values()] == [["-m", f"facemac.cli.{s}"] for s in ("train", "annotate", "analyze")]
    for stage in ("train", "annotate", "analyze"):
        assert f"hydra.run.dir={tmp_path / 'exp' / stage}" in cmd[stage]
        assert "experiment=demo" in cmd[stage] and "seed=3" in cmd[stage]
        assert "++logger.group=demo-exp" in cmd[stage]
    assert "train.epochs=2" in cmd["train"] and "train.resume=auto" in cmd["train"]
    assert f"ckpt={tmp_path / 'exp' / 'train' / 'checkpoints' / 'best.pt'}" in cmd["annotate"]
    assert "annotate.batch_size=8" in cmd["annotate"] and "annotate.batch_size=8" not in cmd["train"]
    assert "targets.casia_webface.root=/x" in cmd["annotate"]  # routed after the group choice it depends on
    assert f"annotations={tmp_path / 'exp' / 'annotate' / 'annotations'}" in cmd["analyze"]
    assert "analyze.n_boot=7" in cmd["analyze"] and not any("n_boot" in c for c in cmd["train"] + cmd["annotate"])
    assert "targets=casia" in cmd["annotate"] and not any(c.startswith("targets") for c in cmd["train"] + cmd["analyze"])
    assert not any(c.startswith(("ckpt=", "annotations=")) for c in cmd["train"])
    # experiment=demo: the simulated person audits 300 faces per target between annotate and analyze
    assert p.audit_size == 300 and f"analyze.audit={tmp_path / 'exp' / 'audit'}" in cmd["analyze"]


def test_default_folder_is_per_experiment_and_per_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEMAC_OUTPUTS", str(tmp_path / "out"))
    a, b = plan(["experiment=paper"], stages=("train",)), plan(["experiment=paper"], stages=("train",))
    assert a.root.parent == (tmp_path / "out" / "pipeline" / "paper").resolve() and a.root != b.root


def test_an_override_no_stage_knows_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="trian.epochs"):
        plan(["experiment=demo", "trian.epochs=1"], root=tmp_path)
    with pytest.raises(ConfigError, match="--stages"):
        plan(["experiment=demo"], root=tmp_path, stages=("train", "evaluate"))
