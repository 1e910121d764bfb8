"""One experiment end to end: train → annotate → analyze, each stage's output handed to the next by explicit path.

    python -m facemac.pipeline experiment=demo [override ...] [--dir DIR] [--stages train,annotate]

Every stage runs as its own ``python -m facemac.cli.<stage>`` process (``<stage>.py`` in a checkout runs the same) with
``hydra.run.dir`` inside one experiment folder::

    <paths.log_dir>/pipeline/<experiment>/<timestamp>/
        train/      checkpoints/best.pt, metrics.json, ...
        annotate/   annotations/<dataset>/ (ckpt=<train>/checkpoints/best.pt)
        analyze/    rates.csv, kl_*.csv, report.md (annotations=<annotate>/annotations)
        pipeline.json

Nothing is looked up with ``latest``, so concurrent experiments never read each other's runs; a ``ckpt=`` or
``annotations=`` of your own is used when the stage that would write it is left out (``--stages``), and refused
when it is planned. An override goes to the stages whose settings schema has its first key
(facemac/settings/runs.py): ``seed=1``, ``paths.*``, ``logger.*``, ``experiment=`` to all; ``demo.*``, ``roots.*`` to
train and annotate; ``dataset=``, ``model.*``, ``data.*``, ``train.*`` to train; ``targets=``, ``ckpt=``,
``annotate.*`` to annotate; ``annotations=``, ``inputs=``, ``analyze.*`` to analyze. ``annotate:key=value`` sends it
to one stage as it is. Every stage's config is composed and its settings built before the first one runs, so a typo
(``+train.epoch=3`` too) fails at once, and then checked (facemac/preflight.py): every data root, target root,
checkpoint, input, weights, landmark and audit file that no earlier stage of this pipeline writes must be there, or
every problem is listed in one error before anything runs (``--dry-run`` prints the commands with these checks).
Re-running with ``--dir`` of an interrupted experiment skips the stages already DONE and resumes training from its
``last.pt``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from facemac.annotation.targets import refuse_unset_group
from facemac.conf_dir import conf_dir
from facemac.dashboard.hint import next_steps
from facemac.errors import ConfigError, FacemacError
from facemac.preflight import CHECKS, StageChecks, problems_error
from facemac.run_state import read_failure
from facemac.runs import DONE_MARKER
from facemac.stage import COMMON_GROUPS, COMMON_KEYS, STAGE_KEYS, owner_of, report_errors

log = logging.getLogger("facemac.pipeline")

STAGES = ("train", "annotate", "analyze")


@dataclass
class Plan:
    """What the pipeline will run: the experiment folder and each stage's overrides and command."""

    experiment: str
    root: Path
    overrides: dict[str, list[str]] = field(default_factory=dict)
    group: str | None = None  # the W&B group the stages' runs share
    commands: dict[str, list[str]] = field(default_factory=dict)
    audit_size: int = 0  # analyze.simulate_audit: faces per target the simulated person audits before analyze
    seed: int = 0
    configs: dict[str, Any] = field(default_factory=dict)  # each stage's config, composed as its command composes it

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def output(self, stage: str) -> Path | None:
        """What a stage hands to the next one (train: its best.pt; annotate: its annotations folder)."""
        handed = {"train": Path("checkpoints") / "best.pt", "annotate": Path("annotations")}.get(stage)
        return None if handed is None else self.stage_dir(stage) / handed

    def produced_before(self, stage: str) -> dict[Path, str]:
        """The outputs earlier planned stages write, which ``stage`` must not look for before they ran."""
        earlier = list(self.commands)[:list(self.commands).index(stage)]
        out = {path.resolve(): s for s in earlier if (path := self.output(s)) is not None}
        if stage == "analyze" and self.audit_size:  # simulate_audit_step writes it just before analyze
            out[(self.root / "audit").resolve()] = "the simulated person"
        return out


def _experiment_name(overrides: list[str]) -> str:
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        if sep and key == "experiment":
            return value
    return "default"


def _split_stage_prefix(override: str) -> tuple[str | None, str]:
    """``annotate:annotate.batch_size=8`` → ("annotate", "annotate.batch_size=8"); no known prefix → (None, same)."""
    head, sep, rest = override.partition(":")
    if sep and head in STAGES and "=" not in head:
        return head, rest
    return None, override


def route_overrides(overrides: list[str], stages: tuple[str, ...] = STAGES) -> dict[str, list[str]]:
    """Each override → the stages that own its top-level key or group (facemac.stage.STAGE_KEYS; common keys such as
    ``seed``, ``paths.*``, ``logger.*``, ``experiment`` go to all three), in the order given. ``stage:`` sends one to a
    single stage. An override that no stage owns is an error naming it and the keys that exist."""
    routed: dict[str, list[str]] = {s: [] for s in STAGES}
    for raw in overrides:
        stage, ov = _split_stage_prefix(raw)
        owners = (stage,) if stage is not None else owner_of(ov)
        if not owners:
            keys = sorted({*COMMON_KEYS, *COMMON_GROUPS, *(k for ks in STAGE_KEYS.values() for k in ks)})
            raise ConfigError(f"override {ov!r} fits no stage: its first key is none of {', '.join(keys)} "
                              "(prefix it with train:, annotate: or analyze: to send it to one stage as it is)")
        for s in owners:
            routed[s].append(ov)
    return {s: routed[s] for s in stages}


def _compose(stage: str, overrides: list[str]):
    """The stage's config as its run would compose it: a typo fails here, before any stage runs."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from facemac.extras import check_overrides

    check_overrides(overrides)
    GlobalHydra.instance().clear()
    from facemac.cli.errors import composition_message
    from facemac.settings import build_settings

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="pipeline"):
        try:
            cfg = compose(config_name=stage, overrides=overrides)
        except Exception as e:  # noqa: BLE001 - Hydra's composition errors name the bad key or choice
            raise ConfigError(f"{stage} stage: {composition_message(e, stage) or e}") from None
    try:
        build_settings(cfg, stage)  # unknown keys (also +key=), choices and ranges, before any stage runs
    except ConfigError as e:
        raise ConfigError(f"{stage} stage: {e}") from None
    return cfg


def _handed_by_user(overrides: list[str], key: str, earlier: str, stages: tuple[str, ...]) -> bool:
    """Whether the user gave ``key`` (ckpt / annotations) themselves: kept when the stage that would write it is not
    planned (``--stages annotate,analyze ckpt=/my/best.pt``); refused when it is, since one of the two would be
    silently ignored."""
    given = [o for o in overrides if o.lstrip("+~").partition("=")[0] == key]
    if given and earlier in stages:
        raise ConfigError(f"{given[-1]}: this pipeline's {earlier} stage writes {key} for the next stage; drop it, or "
                          f"leave {earlier} out (--stages) to use your own")
    return bool(given)


def plan(overrides: list[str], root: Path | None = None, stages: tuple[str, ...] = STAGES) -> Plan:
    """Route the overrides, pick the experiment folder and build each stage's command line."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"--stages: unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    routed = route_overrides(overrides, stages)
    refuse_unset_group(routed.get("annotate", []))  # Hydra's own error on targets=null is a bare ValueError
    experiment = _experiment_name(overrides)
    if root is None:
        log_dir = Path(str(OmegaConf.select(_compose(stages[0], routed[stages[0]]), "paths.log_dir"))).expanduser()
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        root = log_dir / "pipeline" / experiment / stamp
    root = Path(root).expanduser().resolve()
    p = Plan(experiment=experiment, root=root, overrides=routed)
    user_keys = {o.lstrip("+").partition("=")[0] for o in overrides}
    group = [] if "logger.group" in user_keys else [f"++logger.group={experiment}-{root.name}"]
    p.group = next((o.partition("=")[2] for o in [*overrides, *group] if o.lstrip("+").startswith("logger.group=")),
                   None)
    for stage in stages:
        explicit = [f"hydra.run.dir={p.stage_dir(stage)}", *group]
        if stage == "train":
            explicit.append("train.resume=auto")  # a re-run of an interrupted pipeline continues from last.pt
        else:
            key, earlier = ("ckpt", "train") if stage == "annotate" else ("annotations", "annotate")
            if not _handed_by_user(routed[stage], key, earlier, stages):
                explicit.append(f"{key}={p.output(earlier)}")
        if "logger.name" not in user_keys and stage != "train":  # train names its runs from model and dataset
            explicit.append(f"++logger.name={experiment}-{stage}-{root.name}")
        p.configs[stage] = _compose(stage, [*routed[stage], *explicit])  # what the stage will run with
        if stage == "analyze" and _simulated_audit(p, p.configs[stage]):  # the demo's simulated person (below)
            explicit.append(f"analyze.audit={p.root / 'audit'}")
            p.configs[stage] = _compose(stage, [*routed[stage], *explicit])
        p.commands[stage] = [sys.executable, "-m", f"facemac.cli.{stage}", *routed[stage], *explicit]
    return p


def _simulated_audit(p: Plan, cfg) -> bool:
    """``analyze.simulate_audit=N`` (experiment=demo: 300) with no ``analyze.audit``: the analysis reads the audits
    the pipeline simulates into ``<experiment>/audit/`` (simulate_audit_step)."""
    size = int(cfg.analyze.simulate_audit or 0)
    if size <= 0 or cfg.analyze.audit is not None:
        return False
    p.audit_size, p.seed = size, int(cfg.seed)
    return True


def simulate_audit_step(p: Plan) -> None:
    """Between annotate and analyze: a sample of each target drawn as the audit tool draws it, judged by the
    simulated person from the target's ground truth (``labels.csv`` beside its images; the demo has one)."""
    from facemac.annotation_table import read_manifest
    from facemac.audit.simulate import simulate_audits

    annotations = p.stage_dir("annotate") / "annotations"
    truth = {}
    for d in sorted(x for x in annotations.iterdir() if x.is_dir()):
        m = read_manifest(d)
        if m is not None and (Path(m["root"]) / "labels.csv").is_file():
            truth[str(m["dataset"])] = Path(m["root"]) / "labels.csv"
    if not truth:
        raise FacemacError(f"analyze.simulate_audit={p.audit_size}: no target in {annotations} has a labels.csv to "
                           "simulate a person from; set analyze.simulate_audit=0")
    simulate_audits(annotations, p.root / "audit", p.audit_size, p.seed, truth)
    log.info("simulated audits of %d faces per target (%s) → %s", p.audit_size, ", ".join(truth), p.root / "audit")


def preflight(p: Plan) -> list[StageChecks]:
    """Every planned stage's inputs that no earlier stage writes, checked on the configs the stages will compose
    (facemac/preflight.py); stages already DONE in this folder are not run, so not checked."""
    return [CHECKS[s](p.configs[s], p.produced_before(s)) for s in p.commands
            if not (p.stage_dir(s) / DONE_MARKER).exists()]


def show_preflight(p: Plan, checks: list[StageChecks]) -> None:
    """--dry-run: each stage's command and what its pre-flight found, left to the stage, or refused."""
    checked = {c.stage: c for c in checks}
    for stage, cmd in p.commands.items():
        print(f"{stage} → {p.stage_dir(stage)}\n  {shlex.join(cmd)}")
        lines = checked[stage].lines() if stage in checked else ["  done   already DONE in this folder: skipped"]
        print("\n".join(lines))
    n = sum(len(c.problems) for c in checks)
    print(f"pre-flight: {'no problems' if n == 0 else f'{n} problem' + ('s' if n > 1 else '')}", flush=True)


def run(p: Plan, dry_run: bool = False) -> Plan:
    """Run the planned stages in order; stop at the first failing one (its exit status is in the error)."""
    p.root.mkdir(parents=True, exist_ok=True)
    record = {"experiment": p.experiment, "root": str(p.root),
              "stages": {s: {"dir": str(p.stage_dir(s)), "command": shlex.join(c)} for s, c in p.commands.items()}}
    (p.root / "pipeline.json").write_text(json.dumps(record, indent=2))
    for stage, cmd in p.commands.items():
        out = p.stage_dir(stage)
        if (out / DONE_MARKER).exists():
            log.info("%s: already done in %s, skipped", stage, out)
            continue
        if dry_run:  # the commands were printed with their pre-flight checks (show_preflight)
            continue
        log.info("%s → %s\n  %s", stage, out, shlex.join(cmd))
        if stage == "analyze" and p.audit_size:
            simulate_audit_step(p)
        proc = subprocess.run(cmd, env=dict(os.environ))
        if proc.returncode != 0 or not (out / DONE_MARKER).exists():
            failure = read_failure(out)  # the stage's own one-line error, when it recorded one
            why = f": {failure.describe()}" if failure is not None else ""
            raise FacemacError(f"pipeline stage {stage} failed (exit status {proc.returncode}){why}; its run folder "
                               f"is {out}; fix the cause and re-run with --dir {p.root} to continue")
    if dry_run:
        log.info("dry run: nothing was run; the commands are in %s", p.root / "pipeline.json")
        return p
    log.info("experiment %s done: %s", p.experiment, p.root)
    log.info("%s", next_steps(p.root, p.group, p.experiment))
    return p


def main(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m facemac.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=demo seed=1 "
                                                     "(prefix with train:/annotate:/analyze: to send to one stage)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="experiment folder (default <paths.log_dir>/pipeline/<experiment>/<time>); "
                             "an existing one continues where it stopped")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset, in pipeline order")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each stage's command and its pre-flight checks, run nothing (exit 0, or 2 with "
                             "the problems)")
    args = parser.parse_intermixed_args(argv)  # overrides before and after --stages/--dir
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    with report_errors():
        p = plan(args.overrides, args.dir, stages)
        checks = preflight(p)
        if args.dry_run:
            show_preflight(p, checks)
        error = problems_error(checks)
        if error is not None:
            raise error
        log.info("pre-flight: %d value(s) found, %d left to the stages that produce or fetch them",
                 sum(len(c.found) for c in checks), sum(len(c.later) for c in checks))
        return run(p, dry_run=args.dry_run)


if __name__ == "__main__":
    main()
