"""Training's CPU split from measured costs (facemac/training/probe.py): it measures, leaves no trace, and the run
records and logs what it chose."""

import numpy as np
import torch

from facemac.data.augment import build_augment
from facemac.data.dataset import FaceDataset
from facemac.data.preprocess import Preprocessor
from facemac.models.mac import create_mac
from facemac.training.probe import measure_costs
from facemac.training.run import train
from facemac.training.state import rng_state
from tests.train_helpers import make_table

AUG = {"backend": "fast", "hflip": 0.5, "affine": {"p": 0.8}, "color": {"p": 0.8, "brightness": 0.2}}


def test_the_probe_measures_and_leaves_no_trace():
    torch.manual_seed(3)
    table = make_table(40, broken=2)
    ds = FaceDataset(table, Preprocessor("arcface", 32), build_augment(AUG, seed=5))
    model = create_mac({"timm_name": "test_resnet", "img_size": 32, "pretrained": False, "drop_rate": 0.2}, 3)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}  # incl. batch-norm running statistics
    rng, threads = rng_state(), torch.get_num_threads()
    aug_state = repr(ds.augment._generator().bit_generator.state)  # (Philox: counter and key are arrays)
    costs = measure_costs(ds, model, [0.5] * 3, [0.5] * 3, "fp32", True, torch.device("cpu"), cores=2, n=16)
    assert costs is not None and costs.cores == 2
    assert 0 < costs.decode_s < 1 and 0 < costs.model_all_s < 5 and 0 < costs.model_one_s < 5
    after = rng_state()
    assert torch.equal(after["torch"], rng["torch"]) and after["python"] == rng["python"]
    assert torch.equal(after["numpy"]["keys"], rng["numpy"]["keys"])
    assert repr(ds.augment._generator().bit_generator.state) == aug_state  # a copy drew the augmentation's numbers
    assert torch.get_num_threads() == threads and model.training
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_an_all_unreadable_sample_measures_nothing():
    table = make_table(8, broken=8)
    ds = FaceDataset(table, Preprocessor("arcface", 32))
    model = create_mac({"timm_name": "test_resnet", "img_size": 32, "pretrained": False}, 3)
    assert measure_costs(ds, model, [0.5] * 3, [0.5] * 3, "fp32", False, torch.device("cpu"), cores=2) is None


def test_auto_training_measures_logs_and_records_its_split(make_cfg, tmp_path, caplog, monkeypatch):
    """#24: the probe's choice is what the loaders use, what <run>/config.yaml holds and what the tracker's config is
    updated to; the composed config is never written to (it still says auto)."""
    import yaml

    import facemac.stage as stage_mod
    import facemac.training.run as run_mod
    from facemac.tracking import NullTracker

    class Recording(NullTracker):
        configs: list = []

        def update_config(self, record):
            self.configs.append(record)

    used, real_loader = [], run_mod.make_loader
    monkeypatch.setattr(run_mod, "make_loader", lambda *a, **k: used.append(k["workers"]) or real_loader(*a, **k))
    monkeypatch.setattr(stage_mod, "create_tracker", lambda *a, **k: Recording())
    cfg = make_cfg("train", ["logger=none", "model.timm_name=test_resnet", "model.input_size=32", "data.batch_size=16",
                             "augment=none", "train.progress=false", "train.epochs=1", "train.device=cpu"])
    with caplog.at_level("INFO"):
        result = train(cfg, table=make_table(48))
    assert result.finished
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("train resources: ")
                and "ms/img" in r.getMessage())
    assert "measured decode+augment" in line and "predicted" in line and "img/s" in line
    record = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    workers = record["data"]["num_workers"]
    assert isinstance(workers, int) and np.isfinite(workers) and set(used) == {workers}
    assert isinstance(record["train"]["cpu_threads"], int) and record["train"]["precision"] == "fp32"
    assert record["train"]["device"] == "cpu" and record["model"]["weight_source"]["kind"] == "none"
    assert record["train"]["decoded_cache"] is False  # auto, decided off for a 1-epoch run
    assert Recording.configs and Recording.configs[-1] == record  # W&B's config follows the probe's decision
    assert cfg.data.num_workers == "auto" and cfg.train.cpu_threads == "auto"  # nothing wrote into the config


def test_explicit_workers_are_not_measured(make_cfg, tmp_path, caplog):
    cfg = make_cfg("train", ["logger=none", "model.timm_name=test_resnet", "model.input_size=32", "data.batch_size=16",
                             "augment=none", "train.progress=false", "train.epochs=1", "data.num_workers=0"])
    with caplog.at_level("INFO"):
        train(cfg, table=make_table(48))
    assert "ms/img" not in caplog.text and "explicit data.num_workers=0" in caplog.text


def test_the_probe_says_what_it_measures_before_it_starts(make_cfg, tmp_path, caplog, monkeypatch, cores):
    """#22 item 14: the first run was silent for ~17 s (resnet18 @112, 2 cores) while the probe measured."""
    import facemac.training.probe as probe

    cores(2)
    said_before = []
    real = probe.measure_costs

    def measured(*args, **kwargs):
        said_before.append([r.getMessage() for r in caplog.records if "train resources: measuring" in r.getMessage()])
        return real(*args, **kwargs)

    monkeypatch.setattr(probe, "measure_costs", measured)
    cfg = make_cfg("train", ["logger=none", "model.timm_name=test_resnet", "model.input_size=32", "data.batch_size=16",
                             "augment=none", "train.progress=false", "train.epochs=1", "train.device=cpu"])
    with caplog.at_level("INFO"):
        train(cfg, table=make_table(48))
    assert said_before == [["train resources: measuring decoding and 6 forward+backward passes on 16 training images "
                            "to split 2 cores between decoding and torch threads (set data.num_workers and "
                            "train.cpu_threads to skip this)"]]
