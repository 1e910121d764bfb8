"""Starting weights: local files win, hub weights come from the hub cache, offline with nothing cached is one
ConfigError before any data work, and the source is recorded. No test reaches a hub (conftest: HF_HUB_OFFLINE and an
empty hub cache)."""

from pathlib import Path

import huggingface_hub
import huggingface_hub.constants as hub
import pytest
import timm
import torch
from safetensors.torch import save_file

from facemac.errors import ConfigError
from facemac.models.mac import create_mac
from facemac.models.weights import WAYS_OUT, resolve_weights
from facemac.training.run import train
from tests.train_helpers import write_celeba_tree

SMOKE = ["logger=none", "train.epochs=1", "train.limit_batches=1", "data.batch_size=8", "data.eval_batch_size=8",
         "data.num_workers=0", "train.progress=false"]


def _warm_hub_cache(name: str) -> dict[str, torch.Tensor]:
    """Put timm's default weights file for ``name`` into the (test's own) hub cache, as a download would."""
    pcfg = timm.models.get_pretrained_cfg(name)
    state = timm.create_model(name, pretrained=False).state_dict()  # at timm's default size (test_vit: 160 px)
    repo = pcfg.hf_hub_id
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = Path(hub.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"  # conftest's empty per-session cache
    (base / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in state.items()}, str(base / "snapshots" / commit / "model.safetensors"))
    return state


def test_local_weights_file_wins_and_vit_position_embeddings_are_resampled(tmp_path):
    """A ViT saved at its 224-style default size starts a 32-px MAC: timm's filter resamples the position grid."""
    src = timm.create_model("test_vit", pretrained=False)  # 160 px: 10x10 patches
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    cfg = {"timm_name": "test_vit", "img_size": 32, "pretrained": True, "weights": str(path)}
    source = resolve_weights(cfg)
    assert source.kind == "file" and source.file == str(path.resolve()) and len(source.sha256) == 64
    model = create_mac(cfg, num_attributes=3)
    assert model.backbone.pos_embed.shape[1] == src.pos_embed.shape[1] - 100 + 4  # 10x10 -> 2x2 patch tokens
    assert torch.equal(model.backbone.patch_embed.proj.weight, src.patch_embed.proj.weight)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_warm_hub_cache_loads_offline_through_timm():
    state = _warm_hub_cache("test_resnet")
    source = resolve_weights({"timm_name": "test_resnet", "pretrained": True})
    assert source.kind == "hf-hub" and source.ref == timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    model = create_mac({"timm_name": "test_resnet", "pretrained": True}, num_attributes=2)
    assert torch.equal(model.backbone.state_dict()["conv1.0.weight"], state["conv1.0.weight"])


def test_offline_with_nothing_cached_is_one_config_error(monkeypatch):
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("no download offline"))
    with pytest.raises(ConfigError) as e:
        resolve_weights({"timm_name": "resnet18", "pretrained": True})
    msg = str(e.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg and "resnet18" in msg
    assert all(way in msg for way in WAYS_OUT)


def test_unreachable_hub_is_one_config_error_without_retries(monkeypatch):
    """Online mode, but the hub call fails (no network): one metadata request, then the same one-line error."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    calls = []

    def unreachable(url, **kwargs):
        calls.append(url)
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", unreachable)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("no download"))
    with pytest.raises(ConfigError, match="Name or service not known") as e:
        resolve_weights({"timm_name": "vit_small_patch16_224", "pretrained": True})
    assert len(calls) == 1 and "\n" not in str(e.value) and all(way in str(e.value) for way in WAYS_OUT)


def test_training_fails_before_any_data_work(make_cfg, monkeypatch, tmp_path):
    import facemac.training.run as run

    monkeypatch.setattr(run, "load_table", lambda cfg: pytest.fail("data was prepared before the weights check"))
    cfg = make_cfg("train", SMOKE + ["model=resnet18"])
    with pytest.raises(ConfigError, match="model.pretrained=false"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
    monkeypatch.setattr(run, "load_table", lambda cfg: pytest.fail("data was prepared before the name check"))
    with pytest.raises(ConfigError, match="close names"):
        train(make_cfg("train", SMOKE + ["model.timm_name=resnet81"]))


def test_weight_source_is_recorded_in_checkpoint_and_run_config(make_cfg, tmp_path):
    _warm_hub_cache("test_resnet")
    root = write_celeba_tree(tmp_path / "celeba", n=30)
    cfg = make_cfg("train", SMOKE + ["model.timm_name=test_resnet", "model.pretrained=true", "model.input_size=32",
                                     "dataset=celeba", f"dataset.root={root}"])
    train(cfg)
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    src = best["model_cfg"]["weight_source"]
    assert src["kind"] == "hf-hub" and src["ref"].startswith("timm/test_resnet")
    assert cfg.model.weight_source.kind == "hf-hub"  # the config the tracker sent to W&B
