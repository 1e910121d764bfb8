"""Runs, faults and config mistakes at the stage level (docs/reliability.md, second table)."""

from __future__ import annotations

import math

import pytest
import torch

from facemac.errors import TrainingDivergedError
from facemac.training.checkpoint import file_sha256, load_checkpoint
from facemac.training.run import train
from tests.train_helpers import make_table

FAST = ["logger=none", "model.timm_name=test_resnet", "model.input_size=32", "data.num_workers=0",
        "data.batch_size=16", "augment=none", "train.progress=false", "optim.lr=0.01", "train.epochs=3"]


class _NanGrad(torch.autograd.Function):
    """Identity forward, NaN gradient backward: the loss stays finite while the weights go NaN."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * math.nan


def _inject(monkeypatch, at_call: int, kind: str) -> None:
    """Make the ``at_call``-th training loss (grad enabled; validation runs under no_grad) diverge."""
    import facemac.training.loop.trainer as trainer_mod

    real = trainer_mod.masked_bce
    calls = {"n": 0}

    def fake(logits, *args, **kw):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == at_call:
                if kind == "loss":
                    return real(logits, *args, **kw) * math.nan
                return real(_NanGrad.apply(logits), *args, **kw)
        return real(logits, *args, **kw)

    monkeypatch.setattr(trainer_mod, "masked_bce", fake)


@pytest.mark.parametrize("kind, at_call, message", [
    ("loss", 1, r"loss became nan at step 3 \(epoch 2\)"),        # NaN loss at the first step of epoch 2
    ("grad", 2, r"weights .* became NaN/inf by step 4 \(epoch 2\)"),  # finite loss, NaN weights after the last step
])
def test_nan_stops_training_naming_the_step_and_keeps_the_last_good_checkpoints(make_cfg, tmp_path, monkeypatch,
                                                                                  kind, at_call, message):
    table = make_table(60)  # 36 train rows / batch 16 = 2 full steps per epoch (drop_last)
    run = tmp_path / "run"
    first = train(make_cfg("train", FAST + ["train.stop_after_epochs=1"], run), table=table)
    assert first["finished"] is False
    ckpts = run / "checkpoints"
    before = {name: file_sha256(ckpts / name) for name in ("last.pt", "best.pt")}

    _inject(monkeypatch, at_call, kind)
    with pytest.raises(TrainingDivergedError, match=message) as err:
        train(make_cfg("train", FAST + ["train.resume=auto"], run), table=table)
    assert isinstance(err.value, FloatingPointError)  # still what generic numeric handlers catch
    assert {name: file_sha256(ckpts / name) for name in before} == before
    last = load_checkpoint(ckpts / "last.pt")
    assert (last["epoch"], last["step"]) == (1, 2)
    assert all(torch.isfinite(v).all() for v in last["model_state"].values() if v.is_floating_point())
    assert not (run / "DONE").exists()

    monkeypatch.undo()  # the last good last.pt resumes normally once the cause is gone
    done = train(make_cfg("train", FAST + ["train.resume=auto"], run), table=table)
    assert done["finished"] and load_checkpoint(ckpts / "last.pt")["step"] == 6
