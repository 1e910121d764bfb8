"""Pre-flight (issue #22 item 3): every planned stage's inputs are checked before the first stage runs, by the
stage's own rules, with every problem listed; the paper experiment without target roots is refused before training."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facemac.annotation.targets import resolve_targets as resolve_typed
from facemac.settings import build_settings
from facemac.data.registry import build_table
from facemac.errors import FacemacError
from facemac.pipeline import main, plan, preflight
from facemac.preflight import check_analyze, check_annotate, check_train, dataset_paths


def resolve_targets(cfg):
    """The stage resolves targets from its typed settings; these tests compose a config first."""
    return resolve_typed(build_settings(cfg, "annotate"))


REPO = Path(__file__).resolve().parents[1]
PAPER_TARGETS = ("bupt_balancedface", "bupt_globalface", "syn_gan", "idiff_face")


def _celeba_tree(root: Path, landmarks: bool = True) -> Path:
    """The CelebA layout's names only (pre-flight never reads the files)."""
    (root / "img_align_celeba").mkdir(parents=True)
    names = ["list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt"]
    for name in names + (["list_landmarks_align_celeba.txt"] if landmarks else []):
        (root / name).write_text("")
    return root


def test_the_paper_experiment_without_target_roots_is_refused_before_training(tmp_path):
    """The way it was found: `python -m facemac.pipeline experiment=paper dataset.root=…` trained 30 epochs first."""
    celeba = _celeba_tree(tmp_path / "celeba")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "facemac.pipeline", "experiment=paper", f"dataset.root={celeba}",
                           "--dir", str(tmp_path / "exp")], cwd=REPO, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: pre-flight found 4 problems; nothing was run")
    assert [ln.split(".root is not set")[0].strip() for ln in lines[1:]] == \
        [f"annotate: targets.{t}" for t in PAPER_TARGETS]  # all four, one line each, nothing about the good root
    assert all(f"roots.{t}" in ln for t, ln in zip(PAPER_TARGETS, lines[1:]))  # the one rule for roots, said
    assert not (tmp_path / "exp").exists()  # no stage started, not even the experiment folder
    assert seconds < 60  # a sanity bound (composition only); benchmarks/preflight.py prints the figure


def test_the_demo_experiment_passes_and_dry_run_prints_commands_and_checks(tmp_path, capsys):
    p = main(["experiment=demo", "--dry-run", "--dir", str(tmp_path / "exp")])
    out = capsys.readouterr().out
    assert "pre-flight: no problems" in out and "error " not in out
    for stage in ("train", "annotate", "analyze"):
        assert f"-m facemac.cli.{stage}" in out
    assert f"later  ckpt={p.output('train')} (written by train in this pipeline)" in out
    assert f"later  annotations={p.output('annotate')} (written by annotate in this pipeline)" in out
    assert json.loads((tmp_path / "exp" / "pipeline.json").read_text())["experiment"] == "demo"
    assert not (tmp_path / "exp" / "train").exists()


def test_a_dry_run_with_problems_lists_them_and_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["experiment=demo", "--stages", "annotate,analyze", "--dir", str(tmp_path / "exp"), "--dry-run",
              "targets.demo_real_a.root=/no/such/folder"])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "error  targets.demo_real_a.root=/no/such/folder does not exist" in captured.out
    assert f"error  ckpt='{tmp_path / 'exp' / 'train' / 'checkpoints' / 'best.pt'}': no such file" in captured.out
    err = captured.err.strip().splitlines()
    assert err[0].startswith("error: pre-flight found 2 problems") and len(err) == 3
    assert not (tmp_path / "exp").exists()


def test_targets_null_is_one_line_not_a_hydra_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["targets=null", "--dir", str(tmp_path / "exp")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.splitlines() == [err]
    assert err.startswith("error: targets=null: a target set cannot be unset") and "annotate.only" in err


def test_stages_already_done_are_not_checked_and_their_outputs_are_inputs_then(tmp_path):
    root = tmp_path / "exp"
    (root / "train").mkdir(parents=True)
    (root / "train" / "DONE").write_text("ok\n")  # a finished train/ (its best.pt is what annotate reads)
    p = plan(["experiment=paper", "targets=demo"], root=root)  # train's CelebA root is unset, but train is done
    checks = {c.stage: c for c in preflight(p)}
    assert set(checks) == {"annotate", "analyze"} and checks["annotate"].problems == []
    p = plan(["experiment=demo"], root=root, stages=("annotate",))  # alone: its checkpoint must be there
    (problem,) = preflight(p)[0].problems
    assert problem.startswith(f"ckpt='{root / 'train' / 'checkpoints' / 'best.pt'}': no such file")


# --- each stage's check follows the stage's own rule ------------------------------------------------------------

def _first_error(fn) -> str:
    with pytest.raises(FacemacError) as exc:
        fn()
    return str(exc.value).splitlines()[0]


@pytest.mark.parametrize("ds", [
    {"name": "celeba", "format": "celeba", "root": None},
    {"name": "celeba", "format": "celeba", "root": "/no/such/celeba"},
    {"name": "x", "format": "labels_csv", "file": "/no/such/labels.csv"},
    {"name": "x", "format": "filelist", "file": None, "root": None},
    {"name": "x", "format": "folders", "root": "/no/such/folder"},
    {"name": "x", "format": "recordio", "root": "/no/such/rec"},
    {"name": "x", "format": "tfrecord", "root": "/x"},
    {"name": "x", "format": None, "root": "/x"},
])
def test_a_missing_dataset_path_is_the_message_the_reader_gives(ds):
    """The oracle is the reader itself: build_table refuses the same config with the same first line."""
    assert _first_error(lambda: dataset_paths(ds, "dataset")) == _first_error(lambda: build_table(ds))


def test_train_lists_layout_landmark_weights_and_resume_problems_at_once(make_cfg, tmp_path):
    celeba = _celeba_tree(tmp_path / "celeba", landmarks=False)
    cfg = make_cfg("train", ["dataset=celeba", f"dataset.root={celeba}", "model=resnet18",
                             f"model.weights={tmp_path / 'nope.pth'}", f"train.resume={tmp_path / 'last.pt'}"])
    problems = check_train(cfg).problems
    assert len(problems) == 3
    assert problems[0].startswith(f"dataset.root: {celeba / 'list_landmarks_align_celeba.txt'} does not exist")
    assert "data.align=arcface" in problems[0]
    assert problems[1].startswith(f"model.weights='{tmp_path / 'nope.pth'}': no such file")
    assert problems[2] == f"train.resume='{tmp_path / 'last.pt'}': no such checkpoint"
    (celeba / "list_landmarks_align_celeba.txt").write_text("")  # resize needs no landmarks; arcface now has them
    for extra in (["data.align=resize"], []):
        ok = check_train(make_cfg("train", ["dataset=celeba", f"dataset.root={celeba}", *extra]))
        assert ok.problems == [] and ok.found == [f"dataset.root={celeba} (CelebA layout)"]


def test_maadface_landmarks_and_csv_are_checked(make_cfg, tmp_path):
    root = tmp_path / "maad"
    (root / "images").mkdir(parents=True)
    cfg = make_cfg("train", ["dataset=maadface", f"dataset.root={root}", "dataset.landmarks=bb/lm.csv"])
    assert check_train(cfg).problems == [f"dataset.root: {root / 'MAAD_Face.csv'} does not exist; expected the "
                                         "MAAD-Face label CSV (dataset.csv)"]
    (root / "MAAD_Face.csv").write_text("")
    (problem,) = check_train(cfg).problems
    assert problem.startswith(f"dataset.landmarks=bb/lm.csv: {root / 'bb' / 'lm.csv'} does not exist")


def test_target_roots_follow_the_one_rule_and_all_are_listed(make_cfg, tmp_path):
    bupt = tmp_path / "bupt"
    bupt.mkdir()
    base = ["targets=paper", "logger=none", f"ckpt={tmp_path / 'best.pt'}"]
    cfg = make_cfg("annotate", [*base, f"+roots.bupt_balancedface={bupt}",
                                f"targets.syn_gan.root={tmp_path / 'missing'}"])
    checks = check_annotate(cfg)
    assert checks.found == [f"targets.bupt_balancedface.root={bupt}"]  # from roots.<name>
    assert [p.split(" ")[0].split("=")[0] for p in checks.problems] == [
        "targets.bupt_globalface.root", "targets.syn_gan.root", "targets.idiff_face.root", "ckpt"]
    assert checks.problems[1].startswith(f"targets.syn_gan.root={tmp_path / 'missing'} does not exist")
    # the stage refuses the same config with the first of these lines
    assert _first_error(lambda: resolve_targets(cfg)) == checks.problems[0]
    (tmp_path / "best.pt").write_bytes(b"")
    for name in ("bupt_globalface", "syn_gan", "idiff_face"):
        (tmp_path / name).mkdir(exist_ok=True)
    ok = make_cfg("annotate", [*base, *(f"+roots.{t}={tmp_path / t}" for t in PAPER_TARGETS[1:]),
                               f"targets.bupt_balancedface.root={bupt}", "annotate.only=[bupt_balancedface,syn_gan]"])
    assert check_annotate(ok).problems == [] and len(resolve_targets(ok)) == 2


def test_a_target_landmark_file_and_checkpoint_references(make_cfg, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    cfg = make_cfg("annotate", [f"+targets.mine={{format: folders, root: {mine}, group: synthetic, "
                                f"landmarks: lm.csv}}", "annotate.only=[mine]", "logger=none", "ckpt=latest"])
    problems = check_annotate(cfg).problems
    assert problems[0].startswith(f"targets.mine.landmarks=lm.csv: {mine / 'lm.csv'} is not a file")
    assert problems[1].startswith("ckpt: `latest` found no finished train run")
    ref = ["ckpt=me/facemac/mac-x:v3", f"+targets.mine={{format: folders, root: {mine}, group: real}}",
           "annotate.only=[mine]"]
    assert check_annotate(make_cfg("annotate", [*ref, "logger=none"])).problems == [
        "ckpt='me/facemac/mac-x:v3' looks like a W&B artifact reference but tracking is off; use logger=wandb or "
        "pass a local path"]
    online = check_annotate(make_cfg("annotate", [*ref, "logger=wandb"]))
    assert online.problems == [] and online.later == ["ckpt=me/facemac/mac-x:v3 (a W&B artifact, fetched when the "
                                                      "stage runs)"]


def test_analysis_inputs_and_audit(make_cfg, tmp_path):
    (tmp_path / "ann").mkdir()
    cfg = make_cfg("analyze", [f"annotations={tmp_path / 'ann'}", "logger=none",
                               f"inputs=[{tmp_path / 'gone'},latest]", f"+analyze.audit={tmp_path / 'audit'}"])
    checks = check_analyze(cfg, {(tmp_path / "ann").resolve(): "annotate"})
    assert checks.later == [f"annotations={tmp_path / 'ann'} (written by annotate in this pipeline)"]
    assert [p.split(":")[0].split("=")[0] for p in checks.problems] == ["inputs[0]", "inputs[1]", "analyze.audit"]
    (tmp_path / "audit").mkdir()
    (tmp_path / "gone").mkdir()
    cfg = make_cfg("analyze", [f"inputs=[{tmp_path / 'gone'}]", "logger=none",
                               f"+analyze.audit={tmp_path / 'audit'}"])  # annotations=latest ignored with inputs
    assert check_analyze(cfg).problems == [f"analyze.audit={tmp_path / 'audit'}: {tmp_path / 'audit'} holds no "
                                           "<dataset>.csv audit file (docs/audit.md)"]
    (tmp_path / "audit" / "ds_a.csv").write_text("path,Male\n")
    checks = check_analyze(cfg)
    assert checks.problems == [] and checks.found == [f"inputs[0]={tmp_path / 'gone'}",
                                                      f"analyze.audit={tmp_path / 'audit'} (ds_a.csv)"]


def test_a_missing_ground_truth_labels_file_of_a_folder_target(tmp_path):
    (tmp_path / "root" / "id1").mkdir(parents=True)
    (tmp_path / "root" / "id1" / "a.jpg").write_bytes(b"\xff\xd8")  # listed, never decoded
    ds = {"name": "x", "format": "folders", "root": str(tmp_path / "root"), "labels": "labels.csv"}
    mine = _first_error(lambda: dataset_paths(ds, "targets.x"))
    assert "labels.csv does not exist" in mine and "targets.x.labels" in mine
    theirs = _first_error(lambda: build_table(ds, prefix="targets.x"))
    assert "labels.csv" in theirs  # the reader refuses the same file, in its own words
    (tmp_path / "root" / "labels.csv").write_text("path,identity,Male\n")
    assert dataset_paths(ds, "targets.x").endswith(f"labels {tmp_path / 'root' / 'labels.csv'}")


def test_a_checkpoint_or_annotations_given_to_the_pipeline_are_used_or_refused_never_ignored(tmp_path):
    from facemac.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^ckpt=/my/best.pt: this pipeline's train stage writes ckpt"):
        plan(["experiment=demo", "ckpt=/my/best.pt"], root=tmp_path / "exp")
    with pytest.raises(ConfigError, match=r"^annotations=/a: this pipeline's annotate stage writes annotations"):
        plan(["experiment=demo", "annotations=/a"], root=tmp_path / "exp", stages=("annotate", "analyze"))
    (tmp_path / "best.pt").write_bytes(b"")
    p = plan(["experiment=demo", f"ckpt={tmp_path / 'best.pt'}"], root=tmp_path / "exp", stages=("annotate",))
    assert [c for c in p.commands["annotate"] if c.startswith("ckpt=")] == [f"ckpt={tmp_path / 'best.pt'}"]
    assert preflight(p)[0].found[-1] == f"ckpt={tmp_path / 'best.pt'} → {tmp_path / 'best.pt'}"
