"""Real sweeps and pipelines in subprocesses: Optuna records its best value, submitit's local launcher runs a
multirun, and two pipelines run one after the other keep their outputs apart."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.train_helpers import write_celeba_tree

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.timm_name=test_resnet", "model.input_size=32", "data.batch_size=8", "data.eval_batch_size=16",
        "data.num_workers=0", "train.progress=false", "augment=none", "logger=none", "train.epochs=1",
        "train.limit_batches=2"]
DEMO = ["demo.celeba_identities=40", "demo.celeba_images_per_identity=2", "demo.target_identities=10",
        "demo.target_images_per_identity=2", "demo.workers=1"]


def _celeba(tmp_path: Path) -> list[str]:
    root = write_celeba_tree(tmp_path / "celeba", n=40)
    return ["dataset=celeba", f"dataset.root={root}", "dataset.attributes=[Male,Smiling,Eyeglasses]"]


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_optuna_sweep_of_two_trials_records_the_best_value(tmp_path):
    sweep = tmp_path / "optuna"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"  # a persistent study, as a resumable cluster search uses
    _run(["train.py", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1",
          "hydra.sweeper.study_name=tiny", f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={sweep}", *TINY,
          *_celeba(tmp_path)])
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [json.loads((sweep / str(i) / "metrics.json").read_text())["val"]["mA"] for i in range(2)]
    assert result["best_value"] == pytest.approx(max(trials))  # the sweeper maximised what train.py returned
    assert set(result["best_params"]) == {"optim.lr", "optim.weight_decay", "model.drop_path_rate",
                                          "train.loss_weighting"}
    assert result["name"] == "optuna"
    import optuna
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert len(study.trials) == 2 and study.best_value == pytest.approx(result["best_value"])


@pytest.mark.slow
def test_multirun_through_the_submitit_local_launcher(tmp_path):
    sweep = tmp_path / "sweep"
    _run(["train.py", "-m", "launcher=local", "optim.lr=0.01,0.003", f"hydra.sweep.dir={sweep}", *TINY,
          *_celeba(tmp_path)])
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "DONE").exists())
    assert jobs == ["0", "1"]
    assert list((sweep / ".submitit").iterdir())  # the jobs really went through submitit
    lrs = {yaml.safe_load((sweep / j / ".hydra" / "config.yaml").read_text())["optim"]["lr"] for j in jobs}
    assert lrs == {0.01, 0.003}


def _pipeline(tmp_path: Path, name: str, seed: int) -> Path:
    folder = tmp_path / name
    _run(["-m", "facemac.pipeline", "experiment=demo", f"seed={seed}", *TINY, *DEMO, "annotate.num_workers=0",
          "annotate.num_threads=1", "analyze.n_boot=0", "--dir", str(folder)], timeout=400)
    return folder


@pytest.mark.slow
def test_two_pipelines_keep_their_outputs_apart(tmp_path):
    from facemac.hashing import file_sha256

    runs = [_pipeline(tmp_path, "first", 1), _pipeline(tmp_path, "second", 2)]
    shas = []
    for run in runs:
        assert all((run / s / "DONE").exists() for s in ("train", "annotate", "analyze"))
        best = run / "train" / "checkpoints" / "best.pt"
        shas.append(file_sha256(best))
        manifest = json.loads((run / "annotate" / "annotations" / "demo_real_a" / "manifest.json").read_text())
        assert manifest["checkpoint_sha256"] == shas[-1]  # annotated with this experiment's own MAC
        overrides = yaml.safe_load((run / "analyze" / ".hydra" / "overrides.yaml").read_text())
        assert f"annotations={run / 'annotate' / 'annotations'}" in overrides
        report = (run / "analyze" / "report.md").read_text()
        assert str(run / "annotate" / "annotations") in report
        other = runs[1] if run == runs[0] else runs[0]
        assert str(other) not in report
        rates = (run / "analyze" / "rates.csv").read_text()
        assert "demo_real_a" in rates and "demo_synth_b" in rates
    assert shas[0] != shas[1]  # two seeds, two models: a mix-up could not go unnoticed
