"""Shared fixtures: compose configs the way Hydra would run them, with every output under a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@pytest.fixture(autouse=True)
def _isolate_env(tmp_path_factory, monkeypatch):
    """No test writes to the user's W&B account, outputs folder or cache, and none leaks into another."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("FACEMAC_OUTPUTS", str(tmp_path_factory.mktemp("outputs")))
    if "FACEMAC_CACHE" not in os.environ:  # the demo cache is shared by the whole session: generating it is slow
        monkeypatch.setenv("FACEMAC_CACHE", str(tmp_path_factory.getbasetemp() / "facemac-cache"))
    # no test ever reaches a hub: offline, with an empty hub cache of its own (a developer's warm cache changes nothing)
    import huggingface_hub.constants as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "hf-hub-cache"))


def compose_cfg(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose like `python <stage>.py overrides`, with the run folder at ``output_dir`` and HydraConfig set."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg


@pytest.fixture
def cores(monkeypatch):
    """cores(n): pretend this process may run on ``n`` cores (its affinity set), outside torchrun."""
    def set_cores(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    return set_cores


@pytest.fixture
def make_cfg(tmp_path):
    """make_cfg("train", ["model=resnet18"]) -> a composed config whose run folder is tmp_path/run."""
    def _make(config_name: str, overrides: list[str] | None = None, output_dir: Path | None = None) -> DictConfig:
        return compose_cfg(config_name, overrides or [], output_dir or tmp_path / "run")
    return _make
