"""Failed runs are marked failed (issue #22 item 9): a stage that raised leaves FAILED with its error, a run killed
with -9 reads as killed, a live one as running, and compare and `latest` say which."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from facemac.compare.runs import check
from facemac.errors import ConfigError, DataError, RunLockedError
from facemac.run_state import FAILED_MARKER, RunState, run_status
from facemac.runs import latest_run
from facemac.stage import Stage, run_stage

REPO = Path(__file__).resolve().parents[1]


def test_success_is_finished_and_a_data_error_is_failed_with_its_message(make_cfg, tmp_path):
    ok = tmp_path / "ok"
    run_stage(make_cfg("analyze", ["logger=none"], output_dir=ok), Stage("analyze"), lambda ctx: None)
    assert run_status(ok).state is RunState.FINISHED and not (ok / FAILED_MARKER).exists()

    bad = tmp_path / "bad"

    def fails(ctx):
        raise DataError("/data/x/labels.csv, line 3: fewer than 24 values\nsecond line not recorded")

    with pytest.raises(DataError):  # re-raised as before: report_errors still prints the one line
        run_stage(make_cfg("analyze", ["logger=none"], output_dir=bad), Stage("analyze"), fails)
    record = json.loads((bad / FAILED_MARKER).read_text())
    assert record["error"] == "DataError" and record["message"] == "/data/x/labels.csv, line 3: fewer than 24 values"
    assert record["time"].endswith("+00:00") and not (bad / "DONE").exists()
    status = run_status(bad)
    assert status.state is RunState.FAILED and status.failure.message == record["message"]
    # a resume into the same folder that finishes is finished, with no stale FAILED left
    run_stage(make_cfg("analyze", ["logger=none"], output_dir=bad), Stage("analyze"), lambda ctx: None)
    assert run_status(bad).state is RunState.FINISHED and not (bad / FAILED_MARKER).exists()


def test_a_failed_command_is_marked_failed_and_compare_shows_its_error(tmp_path):
    """The way it was found: a failed command left only a log, which compare called 'still running'."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "analyze.py", f"inputs=[{tmp_path / 'nowhere'}]", "logger=none",
                           f"hydra.run.dir={out}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    failure = run_status(out).failure
    assert run_status(out).state is RunState.FAILED and failure.error == "DataError"
    assert proc.stderr.strip() == f"error: {failure.message}"
    problem = check(out)
    assert problem.state == "failed" and f"failed (DataError: {failure.message}" in problem.reason
    assert "still running" not in problem.reason


_HOLDER = textwrap.dedent("""
    import sys, time
    from omegaconf import OmegaConf
    from facemac.stage import Stage, run_stage
    cfg = OmegaConf.create({"task_name": "annotate", "paths": {"output_dir": sys.argv[1]},
                            "logger": {"backend": "none"}})
    def work(ctx):
        print("working", flush=True)
        time.sleep(120)
    run_stage(cfg, Stage("annotate"), work)
""")


def test_kill_9_is_killed_and_a_live_run_is_running(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "working"
        live = run_status(out)
        assert live.state is RunState.RUNNING and f"pid {proc.pid}" in live.holder
        assert check_reason(out).startswith("annotate run has not finished: still running (pid")
        with pytest.raises(RunLockedError):  # a second run into the live folder is refused and marks nothing
            run_stage(OmegaConf.create({"task_name": "annotate", "paths": {"output_dir": str(out)},
                                        "logger": {"backend": "none"}}), Stage("annotate"), lambda ctx: None)
        assert not (out / FAILED_MARKER).exists() and run_status(out).state is RunState.RUNNING
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert run_status(out).state is RunState.KILLED and not (out / FAILED_MARKER).exists()
    assert "killed (no DONE, no FAILED marker and no live process" in check_reason(out)


def check_reason(folder: Path) -> str:
    (folder / ".hydra").mkdir(exist_ok=True)  # compare finds the stage from the run's config
    (folder / ".hydra" / "config.yaml").write_text("task_name: annotate\n")
    return check(folder).reason


def test_latest_skips_failed_runs_and_says_so(make_cfg, tmp_path, caplog):
    logs = tmp_path / "outputs"
    done = logs / "annotate" / "runs" / "1"
    run_stage(make_cfg("annotate", ["logger=none"], output_dir=done), Stage("annotate"),
              lambda ctx: (ctx.out / "annotations").mkdir())
    failed = logs / "annotate" / "runs" / "2"

    def fails(ctx):
        raise ConfigError("targets.x.root=/gone does not exist")

    with pytest.raises(ConfigError):
        run_stage(make_cfg("annotate", ["logger=none"], output_dir=failed), Stage("annotate"), fails)
    os.utime(failed / ".lock", (os.path.getmtime(done / "DONE") + 5,) * 2)  # started after the finished one
    with caplog.at_level(logging.INFO, logger="facemac.runs"):
        assert latest_run(logs, "annotate", "annotations") == done
    assert f"skipping 1 newer run not finished: {failed} failed (ConfigError: targets.x.root=/gone does not exist" \
        in caplog.text
    (done / "DONE").unlink()
    with pytest.raises(ConfigError, match=r"found no finished annotate run .* \(2 runs not finished: .*ConfigError"):
        latest_run(logs, "annotate", "annotations")


def test_the_pipeline_names_the_failed_stage_and_its_recorded_error(tmp_path, capsys):
    from facemac.pipeline import main

    root = tmp_path / "exp"
    (root / "annotate" / "annotations").mkdir(parents=True)  # there (pre-flight passes) but holds no dataset
    with pytest.raises(SystemExit) as exc:
        main(["experiment=demo", "logger=none", "analyze.simulate_audit=0",  # no targets to audit here
                  "--stages", "analyze", "--dir", str(root)])
    assert exc.value.code == 2
    failure = run_status(root / "analyze").failure
    assert failure is not None and failure.error == "DataError" and "holds no manifest.json" in failure.message
    err = capsys.readouterr().err
    assert f"error: pipeline stage analyze failed (exit status 2): DataError: {failure.message}; its run folder" in err
