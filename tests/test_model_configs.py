"""Every conf/model/*.yaml builds a MAC (offline: pretrained=false here) with one logit per attribute at its input size;
real backbones default to timm's pretrained weights, the demo model starts from scratch."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from facemac.models.mac import create_mac, model_data_config
from facemac.training.run import model_config

MODELS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "model").glob("*.yaml"))
REQUIRED = {"demo_tiny", "resnet18", "resnet50", "convnext_tiny", "vit_s", "vit_b"}
KEYS = {"name", "timm_name", "input_size", "pretrained", "weights", "drop_rate", "drop_path_rate"}


def test_required_models_exist_with_their_keys():
    assert REQUIRED <= set(MODELS)
    for name in MODELS:
        cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "model" / f"{name}.yaml")
        assert KEYS <= set(cfg), name
        assert cfg.pretrained is (name != "demo_tiny") and cfg.weights is None, name


@pytest.mark.parametrize("name", ["demo_tiny", "resnet18", "vit_s", "vit_b"])
def test_model_builds_and_predicts_at_a_small_input_size(make_cfg, name):
    # 32 px keeps ViT-B quick on CPU: timm gets img_size=32 → 2x2 patches of 16 px
    cfg = make_cfg("train", [f"model={name}", "model.input_size=32", "model.pretrained=false", "logger=none"])
    mcfg = model_config(cfg)
    assert mcfg["img_size"] == 32
    model = create_mac(mcfg, 5).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 5)
    dc = model_data_config(model, 32)
    assert dc["input_size"] == [3, 32, 32] and len(dc["mean"]) == 3


def test_vit_b_is_base_patch16():
    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "model" / "vit_b.yaml")
    assert cfg.timm_name == "vit_base_patch16_224"
