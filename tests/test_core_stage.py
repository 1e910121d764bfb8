"""The one stage skeleton: each stage runs with its own keys only, is locked per folder (analysis too), writes DONE,
and a mistake a user can fix ends in one `error:` line with exit status 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from facemac.errors import ConfigError, RunLockedError
from facemac.runlock import RunLock
from facemac.settings import build_settings
from facemac.stage import COMMON_KEYS, STAGE_KEYS, Stage, owner_of, run_stage

REPO = Path(__file__).resolve().parents[1]
STAGES = ("train", "annotate", "analyze")


@pytest.mark.parametrize("stage", STAGES)
def test_an_experiment_sets_every_stage_but_each_keeps_only_its_own_keys(make_cfg, stage):
    cfg = OmegaConf.create(build_settings(make_cfg(stage, ["experiment=paper"]), stage).record())
    own = set(COMMON_KEYS) | set(STAGE_KEYS[stage])
    assert set(cfg.keys()) == own
    assert STAGE_KEYS[stage][-1] in cfg  # train / annotate / analyze block survives
    foreign = {k for s in STAGES if s != stage for k in STAGE_KEYS[s]} - own
    assert foreign and not foreign & set(cfg.keys())
    assert ("demo" in cfg) == (stage != "analyze")  # the demo generator's knobs only where demo data is made
    # the experiment's values for this stage arrived
    expected = {"train": ("train.epochs", 30), "annotate": ("annotate.batch_size", 256),
                "analyze": ("analyze.n_boot", 1000)}[stage]
    assert OmegaConf.select(cfg, expected[0]) == expected[1]


def test_overrides_are_owned_by_the_stages_that_hold_their_first_key():
    assert owner_of("seed=1") == STAGES and owner_of("experiment=paper") == STAGES
    assert owner_of("logger.group=x") == STAGES and owner_of("hydra.run.dir=/x") == STAGES
    assert owner_of("dataset=celeba") == ("train",) and owner_of("+model.weights=/w.pt") == ("train",)
    assert owner_of("hparams_search=optuna") == ("train",)
    assert owner_of("targets=casia") == ("annotate",) and owner_of("targets.casia_webface.root=/x") == ("annotate",)
    assert owner_of("analyze.n_boot=5") == ("analyze",) and owner_of("inputs=[a,b]") == ("analyze",)
    assert owner_of("n_boot=5") == ()  # the old root-level analysis key belongs to nobody now
    assert owner_of("demo.seed=1") == ("train", "annotate")  # analyze makes no demo data (#24)


def test_the_wrapper_writes_done_only_for_finished_work_and_sends_only_own_keys_to_the_tracker(make_cfg, tmp_path,
                                                                                                monkeypatch):
    import facemac.stage as stage_mod

    sent = {}
    monkeypatch.setattr(stage_mod, "create_tracker",
                        lambda cfg, job, out, rank: sent.update(keys=set(cfg.keys()), job=job) or _Null())
    cfg = make_cfg("analyze", ["experiment=paper", "logger=none"], output_dir=tmp_path / "a")
    assert run_stage(cfg, Stage("analyze"), lambda ctx: ctx.out) == (tmp_path / "a").resolve()
    assert (tmp_path / "a" / "DONE").exists() and sent["job"] == "analyze"
    assert "train" not in sent["keys"] and "targets" not in sent["keys"] and "analyze" in sent["keys"]

    def stops_early(ctx):
        ctx.finished = False

    run_stage(make_cfg("analyze", ["logger=none"], output_dir=tmp_path / "b"), Stage("analyze"), stops_early)
    assert not (tmp_path / "b" / "DONE").exists()


class _Null:
    enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_analysis_runs_are_locked_per_folder_like_the_other_stages(make_cfg, tmp_path):
    from facemac.analysis.run import run

    out = tmp_path / "run"
    out.mkdir()
    holder = _spawn_lock_holder(out, fork_child=False)
    try:
        with pytest.raises(RunLockedError, match=rf"another analyze run \(pid {holder.pid} on .*\) is writing"):
            run(make_cfg("analyze", ["logger=none"], output_dir=out))
        assert not (out / "rates.csv").exists()
    finally:
        _kill(holder.pid)
        holder.wait()


def test_a_forked_worker_of_a_killed_run_does_not_keep_the_lock(tmp_path):
    """kill -9 of a run whose DataLoader worker (a forked child) lives on: an immediate resume gets the folder."""
    holder = _spawn_lock_holder(tmp_path, fork_child=True)
    child = int(holder.stdout.readline())  # printed by the child once its after-fork hooks have run
    try:
        _kill(holder.pid)
        holder.wait()
        os.kill(child, 0)  # the worker is still alive ...
        with RunLock(tmp_path, "annotate run"):  # ... and the folder is free at once
            pass
    finally:
        _kill(child)


def _spawn_lock_holder(folder: Path, fork_child: bool) -> subprocess.Popen:
    code = ("import os, sys, time\nfrom facemac.runlock import RunLock\nRunLock(sys.argv[1]).acquire()\n"
            "print('locked', flush=True)\n")
    if fork_child:
        code += ("pid = os.fork()\nif pid == 0:\n    print(os.getpid(), flush=True)\n    time.sleep(60)\n"
                 "    os._exit(0)\n")
    code += "time.sleep(60)\n"
    p = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stage_cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, f"hydra.run.dir={tmp_path / 'run'}", "logger=none"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_a_user_error_is_one_line_and_exit_status_2(tmp_path):
    proc = _stage_cli(["train.py", "dataset=celeba"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line, no traceback
    assert proc.stderr.startswith("error: dataset.root is not set; set dataset.root=<path>")
    assert "error: dataset.root is not set" in (tmp_path / "run" / "train.log").read_text()  # and in the run's log
    full = _stage_cli(["train.py", "dataset=celeba"], tmp_path / "full", HYDRA_FULL_ERROR="1")
    assert full.returncode == 1 and "Traceback" in full.stderr and "ConfigError" in full.stderr


def test_pipeline_refuses_a_typo_before_any_stage_runs(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "facemac.pipeline", "experiment=demo", "analyze.n_bot=5", "--dir",
                           str(tmp_path / "exp")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "analyze stage" in proc.stderr and "n_bot" in proc.stderr
    assert not (tmp_path / "exp" / "train").exists() and time.perf_counter() - t0 < 60


def test_owner_error_lists_the_keys(tmp_path):
    from facemac.pipeline import plan

    with pytest.raises(ConfigError, match=r"'n_boot=5' fits no stage.*analyze.*annotate"):
        plan(["n_boot=5"], root=tmp_path)


def test_a_missing_package_is_one_line_but_a_missing_facemac_module_is_a_bug(capsys):
    from facemac.stage import report_errors

    with pytest.raises(SystemExit) as exit_info:
        with report_errors():
            import wandb_workspaces_that_is_not_there  # noqa: F401
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the Python package providing 'wandb_workspaces_that_is_not_there' is not installed")
    with pytest.raises(ModuleNotFoundError):
        with report_errors():
            import facemac.no_such_module  # noqa: F401


def test_a_file_system_without_flock_runs_unprotected_with_a_warning_not_a_false_refusal(tmp_path, monkeypatch,
                                                                                           caplog):
    """Some Lustre/NFS mounts answer flock with ENOLCK/ENOSYS: that is not 'another run holds it'."""
    import errno

    from facemac import runlock

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runlock.fcntl, "flock", no_locks)
    with caplog.at_level("WARNING", logger="facemac.runlock"):
        with RunLock(tmp_path, "train run"), RunLock(tmp_path, "train run"):  # both proceed
            pass
    assert "cannot lock (flock: No locks available)" in caplog.text and str(tmp_path) in caplog.text

    def held(fd, op):
        raise BlockingIOError(errno.EWOULDBLOCK, "Resource temporarily unavailable")

    monkeypatch.setattr(runlock.fcntl, "flock", held)
    with pytest.raises(RunLockedError, match="another train run"):
        RunLock(tmp_path, "train run").acquire()
