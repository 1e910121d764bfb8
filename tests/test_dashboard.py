"""`python -m facemac.dashboard`: the workspace and report specs build and serialize with no network, dry runs write
them into the run folder, and publishing is refused clearly without credentials. Which keys the panels name is
checked against real offline runs in tests/test_demo_pipeline.py."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from facemac.dashboard import keys as K
from facemac.dashboard.hint import SweepHints, compare_command, dashboard_command, next_steps
from facemac.dashboard.publish import (ENTITY_PLACEHOLDER, load_report, load_workspace, read_specs, report_json,
                                       workspace_json)
from facemac.dashboard.run import run as dashboard, swept_keys, target_datasets
from facemac.dashboard.specs import DashboardTarget, build_report, build_workspace
from facemac.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEMO_TARGETS = ["demo_real_a", "demo_real_b", "demo_synth_a", "demo_synth_b"]


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: the specs must build and serialize offline."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _target(**kw) -> DashboardTarget:
    return DashboardTarget(entity="team", project="facemac", group="demo-run1", sweep_params=swept_keys(),
                           datasets=DEMO_TARGETS, **kw)


def test_specs_build_serialize_and_round_trip_offline(no_network):
    w, r = build_workspace(_target()), build_report(_target())
    w_text, r_text = workspace_json(w), report_json(r)
    assert json.loads(w_text)["entity"] == "team" and json.loads(r_text)["project"]["entityName"] == "team"
    w2, r2 = load_workspace(w_text), load_report(r_text)
    assert workspace_json(w2) == w_text and report_json(r2) == r_text  # what is published is what was written
    assert [type(b).__name__ for b in r2.blocks] == [type(b).__name__ for b in r.blocks]
    assert K.referenced_keys(w2) == K.referenced_keys(w) and K.referenced_keys(r2) == K.referenced_keys(r)
    # the report's runsets select the group's runs of each stage
    filters = [rs["filters"] for b in json.loads(r_text)["spec"]["blocks"] if b.get("type") == "panel-grid"
               for rs in b["metadata"]["runSets"]]
    assert {f["filters"][0]["value"] for f in filters} == {"demo-run1"}
    assert {f["filters"][1]["value"] for f in filters} == {"train", "annotate", "analyze"}


def test_panels_cover_the_issue_and_every_headline_metric():
    w, r = build_workspace(_target()), build_report(_target())
    for spec in (w, r):
        refs = {ref.key for ref in K.referenced_keys(spec)}
        assert {m for ms in K.HEADLINE.values() for m in ms} <= refs
        assert {K.KL_PAIRS, K.KL_ATTRIBUTES, *K.FIGURES, K.PER_ATTRIBUTE_BACC} <= refs
        assert {k for d in DEMO_TARGETS for k in K.dataset_keys(d)} <= refs
    sweep = {ref.key for ref in K.referenced_keys(w.sections[1]) if ref.kind == "config"}
    assert sweep == {"optim.lr", "optim.weight_decay", "model.drop_path_rate", "train.loss_weighting"}
    assert K.Ref("artifact", "divergence") in K.referenced_keys(r)
    assert [s.name.split(" ")[0] for s in w.sections] == ["Training", "Sweeps", "Annotation", "Analysis"]


def test_an_unknown_panel_type_is_refused_by_the_key_check():
    import wandb_workspaces.reports.v2 as wr

    with pytest.raises(TypeError, match="no rule for CodeComparer"):
        K.referenced_keys(wr.PanelGrid(panels=[wr.CodeComparer()]))


def test_sweep_axes_follow_the_optuna_config(tmp_path):
    assert swept_keys() == ["optim.lr", "optim.weight_decay", "model.drop_path_rate", "train.loss_weighting"]
    assert swept_keys(tmp_path / "missing.yaml") == []


def test_dry_run_writes_both_specs_and_says_how_to_publish(make_cfg, tmp_path, no_network, caplog):
    cfg = make_cfg("dashboard", ["experiment=demo", "group=demo-run1", "dashboard.dry_run=true"])
    assert target_datasets(cfg) == DEMO_TARGETS  # the experiment's targets name the per-dataset panels
    with caplog.at_level("INFO"):
        out = dashboard(cfg)
    folder = out["output_dir"]
    assert {p.name for p in out["files"]} == {"workspace.json", "report.json"} and (folder / "DONE").exists()
    assert ENTITY_PLACEHOLDER in (folder / "report.json").read_text()  # no entity known offline
    assert f"publish={folder}" in caplog.text and "dashboard.entity=" in caplog.text
    workspace, report = read_specs(folder, "my-team")
    assert workspace.entity == report.entity == "my-team"
    assert "divergence" in report_json(report) and ENTITY_PLACEHOLDER not in report_json(report)
    with pytest.raises(ConfigError, match="without an entity"):
        read_specs(folder, None)


def test_without_a_group_only_the_workspace_is_written(make_cfg, no_network):
    cfg = make_cfg("dashboard", ["logger.entity=team", "dashboard.datasets=[x]"])
    out = dashboard(cfg)
    assert [p.name for p in out["files"]] == ["workspace.json"]
    spec = json.loads(out["files"][0].read_text())
    assert spec["entity"] == "team" and "x/images" in json.dumps(spec)


def test_a_failed_save_keeps_the_specs_and_says_how_to_retry(make_cfg, monkeypatch):
    import facemac.dashboard.publish as P
    import facemac.tracking as T
    from facemac.dashboard.run import PublishError

    def unreachable(*a):
        raise ConnectionError("no route to host")
    monkeypatch.setattr(T, "has_wandb_credentials", lambda: True)
    monkeypatch.setattr(P, "save", unreachable)
    cfg = make_cfg("dashboard", ["group=g", "logger.entity=team"])
    with pytest.raises(PublishError, match="no route to host.*publish="):
        dashboard(cfg)
    assert (Path(cfg.paths.output_dir) / "report.json").exists()


def test_publish_needs_credentials_and_a_folder_with_specs(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="needs credentials"):
        dashboard(make_cfg("dashboard", [f"publish={tmp_path}"]))
    with pytest.raises(ConfigError, match="holds neither"):
        read_specs(tmp_path, "team")


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_composes_with_the_dashboard(make_cfg, experiment):
    cfg = make_cfg("dashboard", [f"experiment={experiment}"])
    assert cfg.task_name == "dashboard" and cfg.dashboard.project == "facemac"
    assert OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert make_cfg("dashboard", ["logger=none"]).dashboard.project == "facemac"


def test_the_command_runs_offline(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    proc = subprocess.run([sys.executable, "-m", "facemac.dashboard", "group=g1", f"hydra.run.dir={tmp_path}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "workspace.json").exists() and (tmp_path / "report.json").exists()
    assert "python -m facemac.dashboard publish=" in proc.stdout + proc.stderr


def test_pipeline_and_sweeps_print_their_commands(tmp_path, caplog):
    from facemac.pipeline import plan

    p = plan(["experiment=demo"], tmp_path / "exp1")
    assert p.group == "demo-exp1"
    assert plan(["experiment=demo", "logger.group=mine"], tmp_path / "exp1").group == "mine"
    run_dir = tmp_path / "exp1" / "train" / "wandb" / "offline-run-1-abc"
    run_dir.mkdir(parents=True)
    text = next_steps(tmp_path / "exp1", "demo-exp1", "demo")
    assert f"wandb sync {run_dir}" in text and dashboard_command("demo-exp1", "demo") in text
    (run_dir / "run-abc.wandb.synced").touch()  # synced already: no sync line
    assert "wandb sync" not in next_steps(tmp_path / "exp1", "demo-exp1", "demo")
    assert dashboard_command("demo-exp1", "demo") == "python -m facemac.dashboard group=demo-exp1 experiment=demo"
    cfg = OmegaConf.create({"logger": {"backend": "wandb", "group": "optuna-s1"},
                            "hydra": {"sweep": {"dir": str(tmp_path / "sweep")}, "runtime": {"choices": {}}}})
    with caplog.at_level("INFO", logger="facemac.dashboard"):
        SweepHints().on_multirun_end(cfg)
    assert compare_command(tmp_path / "sweep") in caplog.text
    assert "python -m facemac.dashboard group=optuna-s1" in caplog.text


def test_an_optuna_sweep_names_its_group_though_hydra_config_is_unset_at_its_end(make_cfg, caplog):
    from hydra.core.hydra_config import HydraConfig

    cfg = make_cfg("train", ["hparams_search=optuna", "hydra.sweeper.study_name=s1"])
    HydraConfig.instance().cfg = None  # as at on_multirun_end: set only inside jobs
    with caplog.at_level("INFO", logger="facemac.dashboard"):
        SweepHints().on_multirun_end(cfg)
    assert "python -m facemac.dashboard group=optuna-s1" in caplog.text


def _missing(cls, monkeypatch):
    monkeypatch.delattr(cls, "_to_model")


def _new_signature(cls, monkeypatch):
    monkeypatch.setattr(cls, "_to_model", lambda self, *, version: None)


def _raising(cls, monkeypatch):
    def boom(self):
        raise RuntimeError("pydantic model changed")
    monkeypatch.setattr(cls, "_to_model", boom)


@pytest.mark.parametrize("change", [_missing, _new_signature, _raising])
def test_a_changed_private_spec_api_is_one_error_offline_and_a_warning_online(change, make_cfg, monkeypatch, caplog,
                                                                             no_network):
    """The specs go through wandb-workspaces' private _to_model/_from_model: a release may drop them, change their
    signature or make them raise. A dry run then ends in one error naming the version; online the public save()
    still runs."""
    import wandb_workspaces.workspaces as ws

    import facemac.dashboard.publish as P
    import facemac.tracking as T

    change(ws.Workspace, monkeypatch)
    with pytest.raises(P.SpecFormatError, match=r"^wandb-workspaces 0\.4\.\d+ cannot write a workspace spec through "
                                                r"its private _to_model/_from_model \(.+\); facemac is tested with "
                                                r"wandb-workspaces>=0\.4\.13,<0\.5: pip install"):
        dashboard(make_cfg("dashboard", ["group=g", "logger.entity=team"]))
    saved = []
    monkeypatch.setattr(T, "has_wandb_credentials", lambda: True)
    monkeypatch.setattr(P, "save", lambda w, r: saved.append((w, r)) or {"workspace": "https://w", "report": "https://r"})
    with caplog.at_level("WARNING"):
        out = dashboard(make_cfg("dashboard", ["group=g", "logger.entity=team"]))
    assert out["files"] == [] and out["urls"]["report"] == "https://r" and saved and saved[0][1] is not None
    assert "saving to W&B directly instead" in caplog.text


def test_specs_that_the_installed_library_cannot_read_are_one_error_naming_it(tmp_path):
    import facemac.dashboard.publish as P

    (tmp_path / P.WORKSPACE_FILE).write_text('{"not": "a view"}')
    with pytest.raises(P.SpecFormatError, match=r"cannot read a workspace spec .*\(ValidationError: 6 validation "
                                                r"errors for View\); .*pip install 'wandb-workspaces") as err:
        P.read_specs(tmp_path, "team")
    assert "\n" not in str(err.value)
