"""Starting weights: local files win, hub weights come from the hub cache, offline with nothing cached is one
ConfigError before any data work, and the source is recorded. No test reaches a hub (conftest: HF_HUB_OFFLINE and an
empty hub cache)."""

import re
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
    import yaml

    record = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())  # the record; W&B's config is the same
    assert record["model"]["weight_source"] == src


# --- a facemac checkpoint, or any file, as model.weights (issue #22 item 1) ----------------------------------------

FROZEN = SMOKE + ["optim.lr=0.0"]  # lr 0: the parameters a run saves are the ones it started from


def _params(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Parameters only (batch-norm statistics move in train mode even at lr 0)."""
    return {k: v for k, v in state.items() if k.startswith(prefix) and "running_" not in k
            and "num_batches_tracked" not in k}


def _train_run(make_cfg, tmp_path, name: str, overrides: list[str]) -> dict:
    train(make_cfg("train", overrides, tmp_path / name))
    return torch.load(tmp_path / name / "checkpoints" / "best.pt", weights_only=True)


@pytest.mark.parametrize("model", [
    ["model=demo_tiny"],
    ["model=resnet18", "model.pretrained=false", "model.input_size=112"],  # a real backbone, offline
])
def test_a_facemac_checkpoint_as_weights_starts_from_its_backbone_and_says_about_its_head(make_cfg, tmp_path,
                                                                                        model, caplog):
    """The issue's run: `train.py model=resnet18 model.weights=<run>/checkpoints/best.pt` trained from random weights
    (timm matched none of the checkpoint's keys) and recorded that file as its source."""
    root = write_celeba_tree(tmp_path / "celeba", n=30)
    data = ["dataset=celeba", f"dataset.root={root}"]
    first = _train_run(make_cfg, tmp_path, "first", SMOKE + model + data)
    best = tmp_path / "first" / "checkpoints" / "best.pt"

    caplog.set_level("INFO")
    same = _train_run(make_cfg, tmp_path, "same", FROZEN + model + data + [f"model.weights={best}"])
    for prefix in ("backbone.", "head."):
        want, got = _params(first["model_state"], prefix), _params(same["model_state"], prefix)
        assert want.keys() == got.keys() and len(want) >= 2
        assert all(torch.equal(want[k], got[k]) for k in want), prefix
    src = same["model_cfg"]["weight_source"]
    n = len(_params(first["model_state"], "backbone."))
    assert src["kind"] == "file" and src["content"] == "facemac-checkpoint" and src["head"] == "kept"
    assert src["matched"] == src["model_tensors"] == src["file_tensors"] >= n
    assert "kept its head (the same 40 attributes)" in caplog.text

    subset = _train_run(make_cfg, tmp_path, "subset", FROZEN + model + data + [f"model.weights={best}",
                                                                              "dataset.attributes=[Male,Smiling]"])
    want, got = _params(first["model_state"], "backbone."), _params(subset["model_state"], "backbone.")
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert subset["model_state"]["head.weight"].shape[0] == 2 and subset["model_cfg"]["weight_source"]["head"] == "new"
    assert "a new head (the checkpoint's 40 attributes differ from this dataset's 2" in caplog.text


def test_a_weights_file_that_fits_too_few_tensors_is_refused_with_the_counts(make_cfg, tmp_path, monkeypatch):
    import facemac.training.run as run

    root = write_celeba_tree(tmp_path / "celeba", n=30)
    data = ["dataset=celeba", f"dataset.root={root}"]
    train(make_cfg("train", SMOKE + data, tmp_path / "tiny"))  # a demo_tiny (test_efficientnet) MAC
    monkeypatch.setattr(run, "load_table", lambda cfg: pytest.fail("data was read before the weights check"))
    real = ["model=resnet18", "model.pretrained=false"]
    n18 = len(timm.create_model("resnet18", num_classes=0).state_dict())  # the backbone's tensors
    with pytest.raises(ConfigError) as e:
        train(make_cfg("train", SMOKE + data + real + [f"model.weights={tmp_path / 'tiny/checkpoints/best.pt'}"]))
    msg = str(e.value)
    assert "\n" not in msg and "facemac checkpoint of a test_efficientnet MAC" in msg
    assert re.search(rf"\b\d of the model's {n18} tensors matched by name and shape, the file holds 86 ", msg)
    assert "train with model=demo_tiny as the run that wrote it did" in msg

    deeper = tmp_path / "resnet34.pth"  # every resnet18 name is in resnet34 with its shape: the file's share refuses it
    r34 = timm.create_model("resnet34", pretrained=False).state_dict()
    torch.save(r34, deeper)
    with pytest.raises(ConfigError, match=rf"{n18} of the model's {n18} tensors matched by name and shape, the file holds "
                                          rf"{len(r34)} \(the model lacks e.g. 'layer1.2"):
        train(make_cfg("train", SMOKE + data + real + [f"model.weights={deeper}"]))
    wider = tmp_path / "resnet50.safetensors"  # names shared, shapes not
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet50", pretrained=False).state_dict().items()},
              str(wider))
    with pytest.raises(ConfigError, match=r"matched by name and shape, the file holds \d+ "):
        train(make_cfg("train", SMOKE + data + real + [f"model.weights={wider}"]))
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": timm.create_model("resnet18").state_dict(), "args": ConfigError("x")}, pickled)
    with pytest.raises(ConfigError, match="holds objects other than tensors"):
        train(make_cfg("train", SMOKE + data + real + [f"model.weights={pickled}"]))


def test_a_plain_state_dict_records_its_match(tmp_path):
    """timm's own format (here with its classifier and a DDP prefix) loads fully; the source says how much matched."""
    from facemac.models.mac import preflight_model

    src = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    cfg = {"timm_name": "resnet18", "img_size": 112, "pretrained": False, "weights": str(path)}
    record = preflight_model(cfg).record()
    n18 = len(timm.create_model("resnet18", num_classes=0).state_dict())
    assert record["content"] == "state_dict" and (record["matched"], record["model_tensors"]) == (n18, n18)
    assert record["file_tensors"] == n18 + 2  # + fc.weight, fc.bias
    model = create_mac(cfg, num_attributes=2)
    assert model.head_choice is None and torch.equal(model.backbone.conv1.weight, src.conv1.weight)
    assert "state_dict" not in model.backbone.pretrained_cfg  # no second copy of the weights kept
