"""Tracking: logger=none drops everything; logger=wandb without credentials runs offline and finishes."""

from omegaconf import OmegaConf

from facemac.tracking import NullTracker, WandbTracker, create_tracker


def test_none_and_nonzero_ranks_do_not_track(tmp_path):
    cfg = OmegaConf.create({"logger": {"backend": "wandb"}})
    assert type(create_tracker(cfg, "train", tmp_path, rank=1)) is NullTracker
    assert type(create_tracker(OmegaConf.create({"logger": {"backend": "none"}}), "train", tmp_path)) is NullTracker


def test_offline_wandb_run_logs_and_finishes(tmp_path):
    cfg = OmegaConf.create({"x": 1, "y": "${x}", "logger": {"backend": "wandb", "project": "t", "mode": "auto",
                                                            "group": "g", "tags": []}})
    (tmp_path / "a.txt").write_text("hello")
    with create_tracker(cfg, "train", tmp_path) as tracker:
        assert isinstance(tracker, WandbTracker) and tracker.mode == "offline"
        assert tracker.run.config["y"] == 1  # the config sent to W&B is resolved: no ${...} strings
        tracker.log({"loss": 1.0}, step=0)
        tracker.log_artifact("model/x", "model", [tmp_path / "a.txt"], aliases=["best", "latest"])
        run_dir = tracker.run_dir
    assert tracker.run is None
    assert run_dir.name.startswith("offline-run-") and any(run_dir.glob("*.wandb"))
