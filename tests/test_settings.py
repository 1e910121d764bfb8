"""The typed settings (facemac/settings/, #24): every conf/ key has a schema field and every field a conf/ default;
unknown keys, bad choices and old spellings are refused in one line naming the key (also on the command line, where
Hydra's own composition errors now end the same way, exit 2: #22 item 7); the record is the resolved settings; the
entry point returns the metric selection monitors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from facemac.errors import ConfigError
from facemac.settings import SCHEMAS, build_settings, replace
from facemac.settings.analyze import AnalyzeSettings
from facemac.settings.annotate import AnnotateSettings
from facemac.settings.augment import AugmentSettings
from facemac.settings.base import Section
from facemac.settings.data import DataSettings
from facemac.settings.dataset import DatasetSettings
from facemac.settings.demo import DemoSettings
from facemac.settings.logger import LoggerSettings
from facemac.settings.model import ModelSettings
from facemac.settings.optim import OptimSettings, SchedSettings, _signature_keys
from facemac.settings.paths import PathsSettings
from facemac.settings.train import TrainSettings

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = {"paths": PathsSettings, "logger": LoggerSettings, "demo": DemoSettings, "dataset": DatasetSettings,
          "model": ModelSettings, "optim": OptimSettings, "sched": SchedSettings, "augment": AugmentSettings}
ALSO = {"dataset": ["targets/dataset"]}  # one schema, two folders: training sets and annotation targets
HYDRAS_OWN = {"hydra", "defaults"}  # Hydra's nodes in a config file, not facemac settings
# config groups that hold Hydra's settings, defaults lists or whole-config overlays (checked below as such)
NOT_SECTIONS = {"hydra", "launcher", "hparams_search", "local", "experiment", "targets"}


def test_every_config_file_is_checked_here():
    """A new main config (e.g. conf/audit.yaml) needs a root schema in facemac/settings/runs.py (SCHEMAS), a new group
    folder a section schema: then the tests below check its keys."""
    assert {p.stem for p in CONF.glob("*.yaml")} == set(SCHEMAS)
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    assert groups == set(GROUPS) | NOT_SECTIONS | {"targets"}
    for f in (CONF / "targets").glob("*.yaml"):  # target sets are defaults lists of targets/dataset files
        assert set(_yaml(f)) <= HYDRAS_OWN, f


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def _keys(node: dict, prefix: str = "") -> set[str]:
    """Dotted keys of a YAML mapping; a mapping value that is a free-form dict (groups, levels) stops the walk."""
    out = set()
    for k, v in node.items():
        key = f"{prefix}{k}"
        out.add(key)
        if isinstance(v, dict) and v:
            out |= _keys(v, key + ".")
    return out


def _schema_has(schema: type[Section], dotted: str) -> bool:
    from facemac.settings.errors import model_at

    parts = tuple(dotted.split("."))
    parent = model_at(schema, parts[:-1]) if len(parts) > 1 else schema
    if parent is None:  # inside a free-form mapping (analyze.groups, roots, targets.<name> via its own file)
        return model_at(schema, parts[:1]) is None or _free_form(schema, parts)
    return parts[-1] in parent.model_fields or any(f.alias == parts[-1] for f in parent.model_fields.values()) \
        or parent.model_config.get("extra") == "allow"


def _free_form(schema: type[Section], parts: tuple[str, ...]) -> bool:
    from facemac.settings.errors import model_at

    for i in range(1, len(parts)):
        m = model_at(schema, parts[:i])
        if m is not None:
            field = m.model_fields.get(parts[i])
            if field is not None and "dict" in str(field.annotation) and "Settings" not in str(field.annotation):
                return True
    return False


def _fields(model: type[Section], prefix: str = "") -> set[str]:
    out = set()
    for name, f in model.model_fields.items():
        key = prefix + (f.alias or name)
        if name in model.unlisted:
            continue
        out.add(key)
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, Section):
            out |= _fields(ann, key + ".")
    return out


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_key_of_a_group_file_is_a_schema_field_and_every_field_has_a_default_there(group):
    schema = GROUPS[group]
    files = sorted(f for g in [group, *ALSO.get(group, [])] for f in (CONF / g).glob("*.yaml"))
    assert files
    seen = set()
    for f in files:
        keys = _keys({k: v for k, v in _yaml(f).items() if k not in HYDRAS_OWN})
        seen |= keys
        unknown = sorted(k for k in keys if not _schema_has(schema, k))
        assert not unknown, f"{f.relative_to(CONF)}: keys without a field in {schema.__name__}: {unknown}"
    if schema.model_config.get("extra") == "allow":  # optim/sched: the callable's arguments
        for f in files:
            doc = _yaml(f)
            valid = _signature_keys(doc["_target_"])
            assert valid is None or set(doc) - {"_target_", "_partial_"} <= set(valid), f
        return
    missing = sorted(k for k in _fields(schema) if k not in seen)
    assert not missing, f"{schema.__name__} fields no conf/{group}/*.yaml sets (add a default, or list as unlisted)"


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_every_key_of_a_main_config_is_a_field_and_the_schema_defaults_are_the_yaml_defaults(command):
    schema = SCHEMAS[command]
    doc = {k: v for k, v in _yaml(CONF / f"{command}.yaml").items() if k not in HYDRAS_OWN}
    unknown = sorted(k for k in _keys(doc) if not _schema_has(schema, k))
    assert not unknown, f"conf/{command}.yaml keys without a field in {schema.__name__}: {unknown}"
    sections = {"train": TrainSettings, "data": DataSettings, "annotate": AnnotateSettings, "analyze": AnalyzeSettings}
    for name, section in sections.items():
        if name in doc:
            missing = sorted(_fields(section, name + ".") - _keys(doc))
            assert not missing, f"conf/{command}.yaml lacks defaults for {missing}"
            # one default, said twice: the schema's equals the YAML's (interpolations aside)
            yaml_values = {k: v for k, v in doc[name].items() if not (isinstance(v, str) and "${" in v)}
            schema_values = section().plain()
            for k, v in yaml_values.items():
                if not isinstance(v, dict):
                    assert schema_values[k] == v, f"{name}.{k}: schema default {schema_values[k]!r} vs YAML {v!r}"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_key_an_experiment_sets_belongs_to_a_stage(experiment):
    doc = {k: v for k, v in _yaml(CONF / "experiment" / f"{experiment}.yaml").items() if k not in HYDRAS_OWN}
    stages = [SCHEMAS[s] for s in ("train", "annotate", "analyze")]
    unknown = sorted(k for k in _keys(doc) if not any(_schema_has(s, k) for s in stages))
    assert not unknown, unknown


def test_the_schema_choices_are_the_modules_own():
    from typing import get_args

    from facemac.annotation_table import LABEL_RULES
    from facemac.data.preprocess import ALIGN_POLICIES
    from facemac.data.table import GEOMETRIES
    from facemac.data.registry import FORMATS
    from facemac.settings.dataset import Align, Format, Geometry
    from facemac.analysis.correction.choose import MODES as CORRECTION_MODES
    from facemac.training.counting import COUNTING_RULES
    from facemac.training.loop.predict import PRECISIONS
    from facemac.training.loss import WEIGHTINGS
    from facemac.training.selection import SELECTABLE
    from facemac.training.thresholds import OBJECTIVES

    t = TrainSettings.model_fields
    assert set(get_args(t["loss_weighting"].annotation)) == set(WEIGHTINGS)
    assert set(get_args(t["threshold_objective"].annotation)) == set(OBJECTIVES)
    assert set(get_args(t["counting_rule"].annotation)) == set(COUNTING_RULES)
    assert set(get_args(TrainSettings.model_fields["early_stopping"].annotation.model_fields["monitor"].annotation)) \
        == set(SELECTABLE)
    assert set(get_args(t["precision"].annotation)) == set(PRECISIONS)
    assert set(get_args(AnnotateSettings.model_fields["precision"].annotation)) == set(PRECISIONS)
    assert set(get_args(AnalyzeSettings.model_fields["label_rule"].annotation)) == set(LABEL_RULES)
    assert set(get_args(AnalyzeSettings.model_fields["correction"].annotation)) == set(CORRECTION_MODES)
    assert set(get_args(Format)) == set(FORMATS) and set(get_args(Geometry)) == set(GEOMETRIES)
    assert set(get_args(Align)) == set(ALIGN_POLICIES)


@pytest.mark.parametrize("command, overrides, message", [
    ("train", ["+train.epoch=3"], "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("train", ["+trian.epochs=3"], "unknown key 'trian' (did you mean 'train'?)"),
    ("train", ["+optim.lrr=1"], "unknown key 'optim.lrr' (did you mean 'optim.lr'?)"),
    ("train", ["train.precision=off"], "train.precision='off': 'off' is not in facemac's precision vocabulary; "
                                       "write fp32"),
    ("train", ["train.early_stopping.monitor=acc"], "train.early_stopping.monitor='acc'; choose one of mA, "
                                                    "mean_accuracy, mean_f1, mean_auroc"),
    ("train", ["data.num_workers=many"], "data.num_workers='many': expected auto or an integer >= 0"),
    ("annotate", ["+annotate.amp=off"], "unknown key 'annotate.amp': it is now annotate.precision"),
    ("annotate", ["annotate.precision=fp64"], "annotate.precision='fp64'; choose one of auto, fp32, bf16, fp16"),
    ("annotate", ["+targets.x={format: folders, root: /x, group: synthetic, deph: 1}"],
     "unknown key 'targets.x.deph' (did you mean 'targets.x.depth'?)"),
    ("analyze", ["analyze.alpha=-1"], "analyze.alpha=-1: must be >= 0"),
    # the analysis modules take these sections as validated (analysis/run.py, identity.py, examples.py)
    ("analyze", ["analyze.ci_level=1"], "analyze.ci_level=1: must be < 1"),
    ("analyze", ["analyze.n_boot=-1"], "analyze.n_boot=-1: must be >= 0"),
    ("analyze", ["analyze.rows_per_batch=0"], "analyze.rows_per_batch=0: must be >= 1"),
    ("analyze", ["analyze.min_reliability=2"], "analyze.min_reliability=2: must be <= 1"),
    ("analyze", ["analyze.mode=mean"], "analyze.mode='mean'; choose one of hard, soft"),
    ("analyze", ["analyze.correction=always"], "analyze.correction='always'; choose one of auto, audit, validation, "
                                                "none"),
    ("analyze", ["analyze.identity.min_images=1"], "analyze.identity.min_images=1: must be >= 2"),
    ("analyze", ["analyze.identity.levels={Male: person}"], "analyze.identity.levels.Male='person'; choose one of "
                                                             "identity, image"),
    ("analyze", ["analyze.examples.size=300"], "analyze.examples.size=300: must be <= 256"),
    ("analyze", ["analyze.examples.roots=x"], "analyze.examples.roots='x': expected a mapping"),
    # annotation/geometry.py and faces_log.py take these as validated; the detector's own limits are the schema's
    ("annotate", ["annotate.detect.min_face=4"], "annotate.detect.min_face=4: must be >= 8"),
    ("train", ["data.detect.max_side=32"], "data.detect.max_side=32: must be >= 64"),
    ("annotate", ["annotate.detect.min_score=1"], "annotate.detect.min_score=1: must be < 1"),
    ("annotate", ["annotate.pixel_check.max_odd_shapes=2"], "annotate.pixel_check.max_odd_shapes=2: must be <= 1"),
    ("annotate", ["annotate.pixel_check.images=0"], "annotate.pixel_check.images=0: must be >= 1"),
    ("annotate", ["annotate.log_faces.size=8"], "annotate.log_faces.size=8: must be >= 16"),
    ("audit", ["audit.face_size=8"], "audit.face_size=8: must be >= 16"),
    ("audit", ["audit.roots=x"], "audit.roots='x': expected a mapping"),
    ("annotate", ["+targets.x=5"], "targets.x=5: not a dataset entry: give it {format, root, group}"),
    ("annotate", ["targets.demo_real_a.group=fake"], "targets.demo_real_a.group='fake'; choose one of real, synthetic"),
    ("compare", ["stage=eval"], "stage='eval'; choose one of train, annotate, analyze"),
])
def test_bad_settings_are_one_line_naming_the_key(make_cfg, command, overrides, message):
    with pytest.raises(ConfigError) as e:
        build_settings(make_cfg(command, overrides), command)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_settings_are_frozen_and_decisions_make_new_objects(make_cfg):
    s = build_settings(make_cfg("train", []), "train")
    with pytest.raises(ValidationError):
        s.train.epochs = 5
    t = replace(s, "data.num_workers", 3)
    assert t.data.num_workers == 3 and s.data.num_workers == "auto" and t.train is s.train


def test_an_analysis_record_holds_only_its_own_and_the_common_keys(make_cfg, tmp_path):
    from facemac.stage import Stage, run_stage

    run_stage(make_cfg("analyze", ["experiment=paper", "logger=none"], tmp_path / "a"), Stage("analyze"),
              lambda ctx: None)
    record = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert set(record) == {"task_name", "seed", "tags", "paths", "logger", "annotations", "inputs", "analyze"}
    assert record["analyze"]["n_boot"] == 1000 and "demo" not in record  # the experiment's value; no demo knobs


def _cli(monkeypatch, capsys, module, argv):
    """Run a command's main() in this process as the shell would; (exit status, stderr)."""
    import importlib

    monkeypatch.setattr(sys, "argv", [module, *argv])
    packaged = module in ("facemac.compare", "facemac.dashboard")  # python -m runs their __main__
    main = importlib.import_module(module + (".__main__" if packaged else "")).main
    try:
        code = main()
        code = 0 if code is None or not isinstance(code, int) else code
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train.epoch=3"], "error: unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
    (["+train.epoch=3"], "error: unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
    (["model=nope"], "error: In 'train': Could not find 'model/nope'; the options are convnext_tiny, demo_tiny"),
    (["train.epochs=["], "error: cannot parse the override 'train.epochs=['"),
])
def test_hydra_composition_errors_and_facemacs_share_exit_2_and_one_line(monkeypatch, capsys, tmp_path, argv,
                                                                         message):
    monkeypatch.chdir(tmp_path)
    code, err = _cli(monkeypatch, capsys, "facemac.cli.train", [*argv, "logger=none"])
    assert code == 2 and err.strip().splitlines() == [err.strip()] and err.startswith(message), err


def test_every_tool_accepts_the_flags_scripts_pass_to_all(monkeypatch, capsys, tmp_path):
    """#22 item 7: logger=none made compare exit 1 (no logger in its defaults); evaluate printed a traceback."""
    monkeypatch.chdir(tmp_path)
    code, err = _cli(monkeypatch, capsys, "facemac.compare", ["logger=none"])
    assert code == 2 and err.startswith("error: nothing to compare"), err
    code, err = _cli(monkeypatch, capsys, "facemac.dashboard", ["logger=none", "dashboard.dry_run=true"])
    assert code == 0, err
    code, err = _cli(monkeypatch, capsys, "facemac.dashboard", ["logger=none", "logger.project=x"])
    assert code == 2 and "error: logger.project is not in this composition" in err and "+logger.project=" in err
    (tmp_path / "ann").mkdir()
    code, err = _cli(monkeypatch, capsys, "facemac.annotation.evaluate", [str(tmp_path / "ann"), "logger=none"])
    assert code == 2 and err.strip() == f"error: no annotated dataset with a ground-truth labels.csv under " \
                                        f"{tmp_path / 'ann'}", err
    from facemac.cli.errors import drop_common_flags

    assert drop_common_flags(["--out", "x", "logger=none", "+logger.group=g", "hydra.run.dir=/r"], "data.demo") \
        == ["--out", "x"]


def test_a_sweep_gets_the_metric_selection_monitors(make_cfg, monkeypatch, tmp_path):
    """#24: train.py returned val mA whatever train.early_stopping.monitor said; a sweeper then optimised another
    metric than the one best.pt was selected on. Now it returns the monitored one (get_metric_value)."""
    import json

    import facemac.training.run as run_mod
    from facemac.cli.train import main
    from tests.train_helpers import make_table

    real = run_mod.train
    monkeypatch.setattr(run_mod, "train", lambda cfg: real(cfg, table=make_table(48)))
    overrides = ["logger=none", "model.timm_name=test_resnet", "model.input_size=32", "data.batch_size=16",
                 "augment=none", "train.progress=false", "train.epochs=2", "data.num_workers=0",
                 "train.cpu_threads=1", "train.early_stopping.monitor=mean_accuracy"]
    value = main(make_cfg("train", overrides, tmp_path / "run"))
    val = json.loads((tmp_path / "run" / "metrics.json").read_text())["val"]
    assert value == pytest.approx(val["mean_accuracy"]) and value != pytest.approx(val["mA"])


def test_every_auto_is_decided_in_the_record_and_the_view_is_read_only(make_cfg, tmp_path):
    """#24: workers/replicas were written back into the config by dotted key, the rest stayed `auto`; now the record
    holds what the annotation ran with, and the DictConfig view the work reads cannot be written to."""
    from omegaconf.errors import ReadonlyConfigError

    from facemac.annotation.run import ANNOTATE
    from facemac.stage import run_stage

    cfg = make_cfg("annotate", ["logger=none", "annotate.device=auto"], tmp_path / "a")
    seen = {}

    def work(ctx):
        seen["plan"] = ctx.plan
        with pytest.raises(ReadonlyConfigError):
            ctx.cfg.annotate.batch_size = 1
        seen["view"] = ctx.cfg.annotate.num_workers

    run_stage(cfg, ANNOTATE, work)
    a = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["annotate"]
    plan = seen["plan"]
    assert (a["num_workers"], a["replicas"], a["num_threads"]) == (plan.workers, plan.replicas, plan.threads)
    assert seen["view"] == plan.workers and a["device"] == "cpu" and a["precision"] in ("fp32", "bf16")
    assert cfg.annotate.num_workers == "auto" and cfg.annotate.precision == "auto"  # the composed config untouched


def test_annotations_record_the_autos_decided_from_checkpoint_and_data(make_cfg, tmp_path):
    from facemac.annotation.run import annotate
    from tests.annotate_helpers import make_checkpoint, make_folders

    ck = make_checkpoint(tmp_path / "ck.pt")
    root = tmp_path / "faces"
    make_folders(root, identities=2, per_identity=3)
    cfg = make_cfg("annotate", ["logger=none", f"ckpt={ck}", "targets=dcface", f"targets.dcface.root={root}",
                                "annotate.pixel_check.enabled=false"], tmp_path / "run")
    annotate(cfg)
    a = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["annotate"]
    assert (a["compile"], a["gpu_decode"], a["channels_last"]) == (False, False, True)  # 6 images on a CPU
    assert cfg.annotate.compile == "auto" and cfg.annotate.gpu_decode == "auto"
