"""Docs that name what a config holds must say what it holds (#22 item 13: docs/train.md called demo_tiny timm's
resnet10t after the model had become test_efficientnet)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MODELS = {p.stem: OmegaConf.load(p) for p in sorted((ROOT / "conf" / "model").glob("*.yaml"))}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_mention_of_a_model_choice_with_its_timm_name_is_the_configured_one(name):
    timm_name = MODELS[name].timm_name
    pattern = re.compile(rf"`?{re.escape(name)}`?\s*\(timm `([\w.]+)`")
    found = [(doc.name, m.group(1)) for doc in DOCS for m in pattern.finditer(doc.read_text())]
    assert all(t == timm_name for _, t in found), (name, timm_name, found)
    if name == "demo_tiny":
        assert ("train.md", timm_name) in found and ("experiments.md", timm_name) in found


def test_the_train_config_and_train_md_agree_on_how_num_workers_auto_is_chosen():
    comment = (ROOT / "conf" / "train.yaml").read_text()
    row = next(line for line in (ROOT / "docs" / "train.md").read_text().splitlines()
               if line.startswith("| `data.num_workers`"))
    for text in (comment, row):
        assert "measured" in text and "a quarter of the cores" in text.replace("cores/4", "a quarter of the cores")


def test_what_they_say_is_what_the_policy_does(cores):
    import torch

    from facemac.resources import plan_cpu

    cores(8)
    cpu = torch.device("cpu")
    assert plan_cpu("train", "auto", "auto", cpu).measure  # both auto on a CPU: measured by the probe
    assert plan_cpu("train", "auto", 3, cpu).workers == 2  # explicit threads: a quarter of the cores
