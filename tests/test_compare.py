"""`python -m facemac.compare`: runs side by side from their run folders alone (no W&B): training runs with the
config keys that differ, analyses with their pair summaries and per-attribute KL differences, sweep and pipeline
folders expanded, and folders that are not finished runs named and skipped."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.annotation_fixtures import write_annotation_dir
from facemac.compare.run import run as compare
from facemac.compare.runs import collect, label_runs, run_stage
from facemac.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ATTRS = ["Male", "Young", "Smiling"]


def _train_run(folder: Path, lr: float, test_bacc: list[float], done: bool = True) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"task_name": "train", "seed": 0, "optim": {"lr": lr, "weight_decay": 0.05},
                                     "model": {"name": "demo_tiny"}, "paths": {"output_dir": str(folder)},
                                     "logger": {"group": f"g-{lr}"}}), folder / ".hydra" / "config.yaml")
    per_attr = {a: {"accuracy": b, "balanced_accuracy": b, "f1": b, "auroc": b, "threshold": 0.5}
                for a, b in zip(ATTRS, test_bacc)}
    test = {"mA": float(np.mean(test_bacc)), "mean_accuracy": float(np.mean(test_bacc)), "per_attribute": per_attr}
    (folder / "metrics.json").write_text(json.dumps({"val": {"mA": 0.9, "mean_accuracy": 0.91, "epoch": 2},
                                                     "test": test}))
    if done:
        (folder / "DONE").write_text("ok\n")
    return folder


def _annotations(folder: Path, rates: dict[str, list[float]], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for name, r in rates.items():
        probs = (rng.random((400, len(ATTRS))) < np.array(r)).astype(np.float32) * 0.8 + 0.1
        ids = [f"id{i % 40}" for i in range(400)]
        write_annotation_dir(folder / name, name, "real" if name.startswith("real") else "synthetic", ATTRS,
                             [(probs, ids)])
    return folder


def _analysis_run(make_cfg, folder: Path, annotations: Path, extra: list[str] | None = None) -> Path:
    from facemac.analysis.run import run as analyze

    cfg = make_cfg("analyze", ["logger=none", "analyze.n_boot=20", f"annotations={annotations}", *(extra or [])],
                   output_dir=folder)
    analyze(cfg)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")  # what a Hydra app keeps beside its outputs
    return folder


@pytest.fixture(scope="module")
def two_macs(tmp_path_factory):
    """The same two datasets annotated by two MACs that disagree on Smiling."""
    base = tmp_path_factory.mktemp("macs")
    a = _annotations(base / "mac_a", {"real_x": [0.5, 0.6, 0.5], "synth_y": [0.2, 0.8, 0.5]}, seed=0)
    b = _annotations(base / "mac_b", {"real_x": [0.5, 0.6, 0.9], "synth_y": [0.2, 0.8, 0.2]}, seed=0)
    return base, a, b


def test_training_runs_of_a_sweep_side_by_side_and_bad_folders_named(make_cfg, tmp_path):
    sweep = tmp_path / "multiruns" / "2026-01-01"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    _train_run(sweep / "0", 0.01, [0.95, 0.90, 0.80])
    _train_run(sweep / "1", 0.003, [0.96, 0.70, 0.82])
    _train_run(sweep / "2", 0.001, [0.9, 0.9, 0.9], done=False)  # still running
    (tmp_path / "empty").mkdir()
    out = compare(make_cfg("compare", [f"runs=[{sweep},{tmp_path / 'empty'},{tmp_path / 'missing'}]"]))
    folder = out["output_dir"]
    table = pd.read_csv(folder / "comparison.csv")
    # runs are named by what differs (#22 item 10: the figures named them by their timestamp folder)
    assert list(table["run"]) == ["optim.lr=0.01", "optim.lr=0.003"] and set(table["stage"]) == {"train"}
    assert list(table["path"]) == [str(sweep / "0"), str(sweep / "1")]
    assert list(table["config:optim.lr"]) == [0.01, 0.003]  # the key that differs; equal ones are left out
    assert "config:optim.weight_decay" not in table and not any(c.startswith("config:paths.") for c in table)
    assert table["test_mA"].tolist() == pytest.approx([np.mean([0.95, 0.9, 0.8]), np.mean([0.96, 0.7, 0.82])])
    per_attr = pd.read_csv(folder / "train_per_attribute.csv")
    assert len(per_attr) == 6 and set(per_attr["attribute"]) == set(ATTRS)
    assert (folder / "figures" / "train_per_attribute.png").stat().st_size > 1000
    md = (folder / "comparison.md").read_text()
    assert "| Young | 0.9000 | 0.7000 | 0.2000 |" in md  # the attribute the runs disagree on most, first
    reasons = {Path(p.path).name: p.reason for p in out["problems"]}
    assert "has not finished" in reasons["2"] and "not a run folder" in reasons["empty"]
    assert reasons["missing"] == "does not exist"
    assert "## Not compared" in md and f"`{sweep / '2'}`: train run has not finished" in md


def test_two_analyses_of_the_same_datasets_give_per_attribute_kl_differences(make_cfg, tmp_path, two_macs):
    base, ann_a, ann_b = two_macs
    run_a = _analysis_run(make_cfg, tmp_path / "a" / "analyze", ann_a)
    run_b = _analysis_run(make_cfg, tmp_path / "b" / "analyze", ann_b)
    out = compare(make_cfg("compare", [f"runs=[{run_a},{run_b}]"]))
    folder = out["output_dir"]
    diffs = pd.read_csv(folder / "kl_attribute_differences.csv")
    kl_a = pd.read_csv(run_a / "kl_attributes.csv").set_index(["p", "q", "attribute"])["kl"]
    kl_b = pd.read_csv(run_b / "kl_attributes.csv").set_index(["p", "q", "attribute"])["kl"]
    cell = diffs.set_index(["p", "q", "attribute"]).loc[("real_x", "synth_y", "Smiling")]
    assert cell["run"] == "b/analyze" and cell["baseline"] == "a/analyze"
    assert cell["delta"] == pytest.approx(kl_b[("real_x", "synth_y", "Smiling")] - kl_a[("real_x", "synth_y",
                                                                                          "Smiling")])
    assert cell["delta"] > 0.5 and not cell["intervals_overlap"]  # the MACs really disagree there
    male = diffs.set_index(["p", "q", "attribute"]).loc[("real_x", "synth_y", "Male")]
    assert abs(male["delta"]) < 1e-9 and male["intervals_overlap"]  # same probabilities: same KL
    side = pd.read_csv(folder / "kl_pairs_side_by_side.csv")
    assert {"a/analyze: kl_mean", "b/analyze: kl_mean"} <= set(side.columns)
    assert (folder / "figures" / "kl_differences_b_analyze.png").exists()
    md = (folder / "comparison.md").read_text()
    assert "### b/analyze against a/analyze" in md and "| real_x | synth_y | Smiling |" in md
    table = pd.read_csv(folder / "comparison.csv").set_index("run")
    assert "config:annotations" in table.columns  # the analyses differ in which annotations they read
    assert table.loc["b/analyze", "kl_mean real(pooled)||synthetic(pooled)"] > 0

    other = _annotations(tmp_path / "other", {"real_z": [0.5, 0.5, 0.5], "synth_w": [0.4, 0.4, 0.4]}, seed=1)
    run_c = _analysis_run(make_cfg, tmp_path / "c" / "analyze", other, ["analyze.pooled=false"])
    out = compare(make_cfg("compare", [f"runs=[{run_a},{run_c}]", f"baseline={run_c}"]))
    md = (out["output_dir"] / "comparison.md").read_text()
    # the analyses differ in a choice (analyze.pooled) and in their inputs (paths, which never name a run)
    assert "analyze.pooled=true (baseline)" not in md and "analyze.pooled=false (baseline)" in md
    assert "analyze.pooled=true shares no (P, Q, attribute) with analyze.pooled=false" in md


def test_globs_pipeline_folders_latest_and_stage(make_cfg, tmp_path, monkeypatch):
    logs = Path(os.environ["FACEMAC_OUTPUTS"])
    pipe = logs / "pipeline" / "demo" / "t1"
    pipe.mkdir(parents=True)
    (pipe / "pipeline.json").write_text("{}")
    _train_run(pipe / "train", 0.01, [0.9, 0.9, 0.9])
    ann = pipe / "annotate"
    _annotations(ann / "annotations", {"real_x": [0.5, 0.5, 0.5]}, seed=0)
    pd.DataFrame([{"dataset": "real_x", "group": "real", "images": 400, "failures": 0,
                   "images_per_s": 10.0}]).to_csv(ann / "annotation_summary.csv", index=False)
    (ann / "DONE").write_text("ok\n")
    runs, problems = collect([str(pipe)], None, logs)
    assert [r.stage for r in runs] == ["train", "annotate"] and not problems  # analyze/ absent: nothing to say
    assert run_stage(ann) == "annotate"  # no .hydra: told by its outputs
    time.sleep(0.02)
    newer = _train_run(logs / "train" / "runs" / "t2", 0.003, [0.8, 0.8, 0.8])
    runs, _ = collect([], 2, logs)
    assert [r.path for r in runs] == [ann, newer]  # the two newest finished runs, oldest first
    runs, _ = collect([], 5, logs, stage="train")
    assert [r.path for r in runs] == [pipe / "train", newer]
    runs, problems = collect([str(logs / "train" / "runs" / "*"), str(logs / "nothing*")], None, logs)
    assert [r.path for r in runs] == [newer] and problems[0].reason == "the pattern matches nothing"
    out = compare(make_cfg("compare", ["latest=3"]))
    table = pd.read_csv(out["output_dir"] / "comparison.csv")
    assert set(table["stage"]) == {"train", "annotate"} and table.loc[table.stage == "annotate", "images"].item() == 400


def test_labels_are_the_shortest_unique_path_tails(tmp_path):
    from facemac.compare.runs import Run

    runs = [Run(tmp_path / "x" / "first" / "train", "train"), Run(tmp_path / "y" / "first" / "train", "train")]
    label_runs(runs)
    assert [r.label for r in runs] == ["x/first/train", "y/first/train"]


def test_labels_name_the_differing_choices_and_fall_back_to_the_path(tmp_path):
    from facemac.compare.runs import Run

    cfg = {"task_name": "train", "optim": {"lr": 0.01}, "seed": 0, "paths": {"output_dir": "/x/1"}}
    runs = [Run(tmp_path / "r" / "t1", "train", cfg), Run(tmp_path / "r" / "t2", "train", {**cfg, "seed": 1}),
            Run(tmp_path / "r" / "t3", "train", {**cfg, "seed": 1})]
    label_runs(runs)  # t2 and t3 share their choices: the path tells them apart, the choice stays readable
    assert [r.label for r in runs] == ["r/t1 (seed=0)", "r/t2 (seed=1)", "r/t3 (seed=1)"]
    runs = runs[:2] + [Run(tmp_path / "r" / "a1", "analyze", {"annotations": "/data/one"}),
                       Run(tmp_path / "r" / "a2", "analyze", {"annotations": "/data/two"})]
    label_runs(runs)  # analyses differing only in paths keep their folder names
    assert [r.label for r in runs] == ["seed=0", "seed=1", "r/a1", "r/a2"]


def test_nothing_to_compare_is_a_clear_error(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="nothing to compare"):
        compare(make_cfg("compare", []))
    (tmp_path / "half").mkdir()
    _train_run(tmp_path / "half" / "run", 0.1, [0.5, 0.5, 0.5], done=False)
    with pytest.raises(ConfigError, match="no finished run to compare: .*has not finished"):
        compare(make_cfg("compare", [f"runs={tmp_path / 'half' / 'run'}"]))
    with pytest.raises(ConfigError, match="stage='eval'"):
        compare(make_cfg("compare", ["runs=[x]", "stage=eval"]))
    with pytest.raises(ConfigError, match="latest=0"):
        compare(make_cfg("compare", ["latest=0"]))
    with pytest.raises(ConfigError, match="latest=2 found no finished analyze run under"):
        compare(make_cfg("compare", ["latest=2", "stage=analyze"]))


def test_the_command(tmp_path):
    _train_run(tmp_path / "r1", 0.01, [0.9, 0.8, 0.7])
    _train_run(tmp_path / "r2", 0.02, [0.9, 0.8, 0.6])
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "-m", "facemac.compare", f"runs={tmp_path}/r*", f"hydra.run.dir={out}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"comparison.md", "comparison.csv", "DONE"} <= {p.name for p in out.iterdir()}


def test_the_record_not_hydras_full_config_is_what_runs_differ_in(make_cfg, tmp_path):
    """#24: <run>/config.yaml holds the stage's own keys only; Hydra's .hydra/config.yaml (kept for old runs) also
    holds the other stages' keys of an experiment, which are no difference between two training runs."""
    a, b = _train_run(tmp_path / "a", 1e-3, [0.9, 0.8, 0.7]), _train_run(tmp_path / "b", 1e-3, [0.9, 0.8, 0.7])
    for folder, n_boot in ((a, 10), (b, 99)):  # an analysis key the experiment set, different in the two folders
        full = OmegaConf.load(folder / ".hydra" / "config.yaml")
        OmegaConf.save(OmegaConf.merge(full, {"analyze": {"n_boot": n_boot}}), folder / ".hydra" / "config.yaml")
    old = compare(make_cfg("compare", ["runs=[" + f"{a},{b}" + "]"], output_dir=tmp_path / "old"))
    assert "config:analyze.n_boot" in old["table"].columns  # the old fallback: what Hydra wrote
    for folder in (a, b):
        full = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "config.yaml"))
        full.pop("analyze")
        OmegaConf.save(OmegaConf.create(full), folder / "config.yaml")
    new = compare(make_cfg("compare", ["runs=[" + f"{a},{b}" + "]", "logger=none"], output_dir=tmp_path / "new"))
    assert not [c for c in new["table"].columns if c.startswith("config:")]
