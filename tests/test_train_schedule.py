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
