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


def test_the_wandb_config_is_the_record_and_follows_a_later_decision(make_cfg, tmp_path):
    """#24: W&B held the provisional worker count while the run used the probe's; now its config is the record
    (<run>/config.yaml) and is updated when a decision is made after the tracker started."""
    from facemac.settings import build_settings, replace
    from tests.wandb_runfile import offline_runs

    s = build_settings(make_cfg("analyze", ["logger=wandb"], tmp_path / "run"), "analyze")
    with create_tracker(s, "analyze", tmp_path / "run") as tracker:
        assert tracker.run.config["analyze"]["n_boot"] == s.analyze.n_boot and "demo" not in tracker.run.config
        tracker.update_config(replace(s, "analyze.n_boot", 7).record())
    (run,) = offline_runs(tmp_path / "run", wait_s=10)
    assert run.config["analyze"]["n_boot"] == 7 and run.config["task_name"] == "analyze"
