"""The cosine schedule with warm-up as configured (Hydra `_partial_`), and the AdamW partial."""

import math

import pytest
import torch
from hydra.utils import instantiate


def test_optim_and_sched_partials_compose_and_follow_cosine_with_warmup(make_cfg):
    cfg = make_cfg("train", ["logger=none", "sched.warmup_steps=2", "sched.min_lr_ratio=0.1", "optim.lr=1.0"])
    p = torch.nn.Parameter(torch.zeros(3))
    opt = instantiate(cfg.optim)([{"params": [p]}])
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == 1.0
    sched = instantiate(cfg.sched)(opt, total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1 / 3) and lrs[1] == pytest.approx(2 / 3)  # linear warm-up
    assert lrs[2] == pytest.approx(1.0)
    for s in range(2, 10):  # cosine from 1.0 down towards 0.1
        expected = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 2) / 8))
        assert lrs[s] == pytest.approx(expected)
    state = sched.state_dict()
    torch.save(state, "/dev/null")  # plain values only (goes into last.pt, loaded with weights_only=True)


def test_layer_decay_groups_scale_lr_from_the_head_down_and_cover_every_parameter():
    from facemac.errors import ConfigError
    from facemac.models.mac import create_mac
    from facemac.training.layer_decay import layer_decay_groups

    model = create_mac({"timm_name": "test_vit", "img_size": 32}, num_attributes=3)
    groups = layer_decay_groups(model, lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    depth = len(model.backbone.blocks)
    assert lr_of[id(model.head.weight)] == 1e-3 and wd_of[id(model.head.weight)] == 0.05
    assert wd_of[id(model.head.bias)] == 0.0 and wd_of[id(model.backbone.pos_embed)] == 0.0
    assert lr_of[id(model.backbone.patch_embed.proj.weight)] == pytest.approx(1e-3 * 0.5 ** depth)
    assert lr_of[id(model.backbone.blocks[0].attn.qkv.weight)] == pytest.approx(1e-3 * 0.5 ** (depth - 1))
    opt = torch.optim.AdamW(groups, lr=1e-3)  # the per-group lr survives the optimiser's default
    assert min(g["lr"] for g in opt.param_groups) == pytest.approx(1e-3 * 0.5 ** depth)
    with pytest.raises(ConfigError, match="train.layer_decay=0"):
        layer_decay_groups(model, 1e-3, 0.05, 0)
