"""train.compile / annotate.compile: torch.compile runs on the CPU and gives the plain model's numbers (slow: compiles)."""

import shutil

import pytest
import torch

from facemac.annotation.inference import Annotator
from facemac.training.run import train
from tests.train_helpers import make_table

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                 reason="torch.compile on CPU needs a C compiler")]

FAST = ["logger=none", "model.timm_name=test_resnet", "model.input_size=32", "data.num_workers=0",
        "data.batch_size=16", "augment=none", "train.progress=false", "train.epochs=1", "train.channels_last=false"]


def test_compiled_training_and_annotation_match_eager(make_cfg, tmp_path):
    table = make_table(48)
    eager = train(make_cfg("train", FAST, tmp_path / "eager"), table=table)
    compiled = train(make_cfg("train", FAST + ["train.compile=true"], tmp_path / "compiled"), table=table)
    wa = torch.load(eager["best"], weights_only=True)["model_state"]
    wb = torch.load(compiled["best"], weights_only=True)["model_state"]
    assert set(wa) == set(wb)  # the checkpoint holds the plain module's keys (no _orig_mod. prefix)
    for k in wa:
        torch.testing.assert_close(wa[k].float(), wb[k].float(), atol=1e-3, rtol=1e-3)

    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    plain = Annotator.from_checkpoint(eager["best"], torch.device("cpu"), amp="off")
    fast = Annotator.from_checkpoint(eager["best"], torch.device("cpu"), amp="off", compile=True)
    torch.testing.assert_close(fast.predict(x)[0], plain.predict(x)[0], atol=1e-4, rtol=1e-4)
