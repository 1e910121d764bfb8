"""The real entry point in subprocesses: Hydra multirun with W&B offline, torchrun with 2 CPU ranks, kill + resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from facemac.data.registry import build_table
from facemac.checkpoint import load_checkpoint
from facemac.training.run import evaluate_checkpoint
from tests.train_helpers import write_celeba_tree

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.timm_name=test_resnet", "model.input_size=32", "data.batch_size=8", "data.eval_batch_size=16",
        "data.num_workers=0", "train.progress=false", "augment=none"]


def _celeba_args(tmp_path: Path, n: int = 40) -> list[str]:
    root = write_celeba_tree(tmp_path / "celeba", n=n)
    return ["dataset=celeba", f"dataset.root={root}", "dataset.attributes=[Male,Smiling,Eyeglasses]"]


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_multirun_gives_two_run_folders_and_two_offline_wandb_runs(tmp_path):
    sweep = tmp_path / "sweep"
    _run([sys.executable, "train.py", "-m", "optim.lr=0.01,0.003", "logger=wandb", "train.epochs=1",
          "train.limit_batches=2", f"hydra.sweep.dir={sweep}", *TINY, *_celeba_args(tmp_path)])
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "DONE").exists())
    assert [p.name for p in jobs] == ["0", "1"]
    for job in jobs:
        assert (job / "checkpoints" / "best.pt").exists() and (job / "metrics.json").exists()
        offline = list((job / "wandb").glob("offline-run-*"))
        assert len(offline) == 1, list((job / "wandb").iterdir())
    lrs = {json.loads(json.dumps(load_checkpoint(j / "checkpoints/last.pt")["train_state"]["optimizer"]
                                 ["param_groups"][0]["initial_lr"])) for j in jobs}
    assert lrs == {0.01, 0.003}


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_and_checkpoint_evaluates_like_one_process(tmp_path):
    run = tmp_path / "ddp"
    data = _celeba_args(tmp_path, n=50)
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
                 f"hydra.run.dir={run}", "logger=none", "train.epochs=2", *TINY, *data], timeout=400)
    assert (run / "DONE").exists()
    # two epochs: the decoded cache is on by default; rank 0 decided and built it, rank 1 reused it after the barrier
    assert "decoded cache on (train.decoded_cache=auto" in proc.stdout + proc.stderr
    doc = json.loads((run / "metrics.json").read_text())
    table = build_table({"format": "celeba", "root": data[1].split("=", 1)[1],
                         "attributes": ["Male", "Smiling", "Eyeglasses"]})
    single = evaluate_checkpoint(run / "checkpoints" / "best.pt", table, "test")
    # the 2-rank test pass (sharded, gathered, de-duplicated) equals a 1-process pass over the whole split
    assert single["mA"] == pytest.approx(doc["test"]["mA"], abs=1e-6)
    for attr, row in single["per_attribute"].items():
        assert row["accuracy"] == pytest.approx(doc["test"]["per_attribute"][attr]["accuracy"], abs=1e-6)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    # 30 train images over 2 ranks = 15 each, batch 8 per rank, last partial batch dropped: 1 step per epoch
    assert last["step"] == 2


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    data = _celeba_args(tmp_path, n=60)
    common = ["logger=none", "train.epochs=3", *TINY, *data]
    straight = tmp_path / "straight"
    _run([sys.executable, "train.py", f"hydra.run.dir={straight}", *common])
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "train.py", f"hydra.run.dir={killed}", *common], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert last.exists()
    _run([sys.executable, "train.py", f"hydra.run.dir={killed}", "train.resume=auto", *common])
    a, b = load_checkpoint(straight / "checkpoints/last.pt"), load_checkpoint(last)
    assert a["step"] == b["step"]
    for k, v in a["model_state"].items():
        assert torch.allclose(v.float(), b["model_state"][k].float(), atol=1e-6, rtol=0), k
