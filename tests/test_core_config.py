"""Config tree: every group choice composes for its stage; typos fail fast with the valid choices."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

CONF = Path(__file__).resolve().parents[1] / "conf"
STAGE_GROUPS = {"train": ["model", "dataset", "optim", "sched", "augment", "logger"],
                "annotate": ["targets", "logger"], "analyze": ["logger"]}


@pytest.mark.parametrize("stage,group,choice", [
    (stage, group, p.stem) for stage, groups in STAGE_GROUPS.items() for group in groups
    for p in sorted((CONF / group).glob("*.yaml"))
])
def test_every_group_choice_composes(make_cfg, stage, group, choice):
    cfg = make_cfg(stage, [f"{group}={choice}"])
    assert cfg.task_name == stage and group in cfg


def test_a_typo_in_a_group_choice_lists_the_valid_ones(make_cfg):
    with pytest.raises(ConfigCompositionException) as e:
        make_cfg("train", ["model=vit_bb"])
    assert "vit_b" in str(e.value) and "resnet18" in str(e.value)


def test_a_typo_in_a_key_fails_fast(make_cfg):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        make_cfg("train", ["train.epoch=3"])


def test_required_root_names_the_override_to_set(make_cfg):
    from facemac.errors import ConfigError
    from facemac.training.run import train

    cfg = make_cfg("train", ["dataset=celeba", "logger=none"])
    with pytest.raises(ConfigError, match=r"dataset\.root"):
        train(cfg)
