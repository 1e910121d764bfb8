"""Acceptance: the default `python train.py` (demo faces, demo_tiny) reaches >= 95 % mean accuracy and >= 92 % mA."""

import json

import pytest

pytest.importorskip("facemac.data.demo")

from facemac.training.run import train  # noqa: E402


@pytest.mark.slow
def test_default_demo_training_reaches_the_accuracy_target(make_cfg, tmp_path):
    cfg = make_cfg("train", ["logger=none", "train.progress=false"])  # the defaults: dataset=demo, model=demo_tiny
    assert cfg.model.name == "demo_tiny" and cfg.dataset.name.startswith("demo")
    result = train(cfg)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["test"]["mean_accuracy"] >= 0.95, doc["test"]
    assert doc["test"]["mA"] >= 0.92, doc["test"]
    assert result["test"]["mA"] == pytest.approx(doc["test"]["mA"])
