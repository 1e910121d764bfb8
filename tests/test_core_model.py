"""MAC construction: timm backbone + one logit per attribute; typos suggest names; local weights load offline."""

import pytest
import torch

from facemac.errors import CheckpointError, ConfigError
from facemac.models.mac import create_mac, mac_from_checkpoint, model_data_config


def test_one_logit_per_attribute_and_timm_data_config():
    model = create_mac({"timm_name": "resnet10t", "drop_rate": 0.2}, num_attributes=7)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    cfg = model_data_config(model, input_size=48)
    assert cfg["input_size"] == [3, 48, 48] and len(cfg["mean"]) == 3


def test_vit_takes_the_input_size():
    model = create_mac({"timm_name": "test_vit", "img_size": 32}, num_attributes=3)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_unknown_name_suggests_close_timm_names():
    with pytest.raises(ConfigError, match="resnet18") as e:
        create_mac({"timm_name": "resnet81"}, num_attributes=3)
    assert "model.timm_name" in str(e.value)


def test_local_weights_file_is_loaded_without_network(tmp_path):
    src = create_mac({"timm_name": "resnet10t"}, num_attributes=3)
    path = tmp_path / "backbone.pth"
    torch.save(src.backbone.state_dict(), path)
    model = create_mac({"timm_name": "resnet10t", "weights": str(path)}, num_attributes=3)
    for (k, a), b in zip(src.backbone.state_dict().items(), model.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ConfigError, match="no such file"):
        create_mac({"timm_name": "resnet10t", "weights": str(tmp_path / "nope.pth")}, num_attributes=3)


def test_a_checkpoint_rebuilds_without_its_starting_weights(tmp_path):
    """Training may start from hub or local weights; the checkpoint holds every weight, so rebuilding it (test split,
    evaluate_checkpoint, annotation) must not fetch or re-read them: here the local file is gone."""
    cfg = {"timm_name": "test_resnet", "img_size": 32, "pretrained": False}
    trained = create_mac(cfg, 3)
    ckpt = {"model_cfg": {**cfg, "weights": str(tmp_path / "moved_away.safetensors")}, "attributes": ["a", "b", "c"],
            "model_state": trained.state_dict()}
    with pytest.raises(ConfigError, match="no such file"):
        create_mac(ckpt["model_cfg"], 3)
    rebuilt = mac_from_checkpoint(ckpt).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(rebuilt(x), trained.eval()(x))
    with pytest.raises(CheckpointError, match="ck.pt: weights do not fit test_resnet"):
        mac_from_checkpoint({**ckpt, "attributes": ["a"]}, "ck.pt")
