"""One experiment end to end: train → annotate → analyze, each stage's output handed to the next by explicit path.

    python -m facemac.pipeline experiment=demo [override ...] [--dir DIR] [--stages train,annotate]

Every stage runs as its own ``<stage>.py`` process with ``hydra.run.dir`` inside one experiment folder::

    <paths.log_dir>/pipeline/<experiment>/<timestamp>/
        train/      checkpoints/best.pt, metrics.json, ...
        annotate/   annotations/<dataset>/ (ckpt=<train>/checkpoints/best.pt)
        analyze/    rates.csv, kl_*.csv, report.md (annotations=<annotate>/annotations)
        pipeline.json

Nothing is looked up with ``latest``, so concurrent experiments never read each other's runs. An override goes to
every stage whose config accepts it (``seed=1`` to all, ``train.epochs=3`` to train only); ``annotate:key=value``
sends it to one stage. Re-running with ``--dir`` of an interrupted experiment skips the stages already DONE and
resumes training from its ``last.pt``.
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

from omegaconf import OmegaConf

from facemac.dashboard.hint import next_steps
from facemac.errors import ConfigError
from facemac.runs import DONE_MARKER

log = logging.getLogger("facemac.pipeline")

STAGES = ("train", "annotate", "analyze")
REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"


@dataclass
class Plan:
    """What the pipeline will run: the experiment folder and each stage's overrides and command."""

    experiment: str
    root: Path
    overrides: dict[str, list[str]] = field(default_factory=dict)
    group: str | None = None  # the W&B group the stages' runs share
    commands: dict[str, list[str]] = field(default_factory=dict)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage


def _experiment_name(overrides: list[str]) -> str:
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        if sep and key == "experiment":
            return value
    return "default"


def _is_value_override(override: str) -> bool:
    """``a.b=1``: sets a value without changing which configs are composed (groups, ``+``, ``~`` do change it)."""
    key, sep, _ = override.partition("=")
    return bool(sep) and "." in key and key[0] not in "+~" and "@" not in key and not key.startswith("hydra.")


def _split_stage_prefix(override: str) -> tuple[str | None, str]:
    """``annotate:annotate.batch_size=8`` → ("annotate", "annotate.batch_size=8"); no known prefix → (None, same)."""
    head, sep, rest = override.partition(":")
    if sep and head in STAGES and "=" not in head:
        return head, rest
    return None, override


class _Composer:
    """Composes the stage configs (no run) to learn where an override belongs and where outputs go."""

    def __init__(self) -> None:
        from hydra import initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        if not CONF_DIR.is_dir():
            raise ConfigError(f"config folder {CONF_DIR} not found: run the pipeline from a facemac checkout")
        GlobalHydra.instance().clear()
        self._ctx = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="pipeline")
        self._ctx.__enter__()
        self._cache: dict[tuple, object] = {}

    def compose(self, stage: str, overrides: list[str]):
        from hydra import compose

        return compose(config_name=stage, overrides=overrides)

    def accepts(self, stage: str, base: list[str], override: str) -> bool:
        if override.startswith("hydra."):
            return True
        key, sep, _ = override.partition("=")
        if sep and "." in key and key[0] not in "+~" and "@" not in key:
            # a plain value override: look the key up in the stage's config (composed once per group choice set)
            structure = tuple(o for o in base if not _is_value_override(o))
            if (stage, structure) not in self._cache:
                try:
                    self._cache[(stage, structure)] = self.compose(stage, list(structure))
                except Exception:  # noqa: BLE001
                    return False
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(self._cache[(stage, structure)], parent, throw_on_missing=False)
            return OmegaConf.is_dict(node) and leaf in node.keys()  # `in node` is False for ??? values
        try:
            self.compose(stage, [*base, override])
            return True
        except Exception:  # noqa: BLE001 - any composition error means "not this stage's key"
            return False

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)


def route_overrides(overrides: list[str], composer: _Composer, stages: tuple[str, ...] = STAGES) -> dict[str, list[str]]:
    """Each override → the stages whose config composes with it (after the overrides already routed there, so
    ``targets=casia targets.casia_webface.root=…`` works); one that no stage accepts is an error naming it."""
    routed: dict[str, list[str]] = {s: [] for s in STAGES}
    for raw in overrides:
        stage, ov = _split_stage_prefix(raw)
        if stage is not None:
            routed[stage].append(ov)
            continue
        accepted = [s for s in STAGES if composer.accepts(s, routed[s], ov)]
        if not accepted:
            try:  # train's composition error names the bad key
                composer.compose("train", [*routed["train"], ov])
            except Exception as e:  # noqa: BLE001
                raise ConfigError(f"override {ov!r} fits no stage ({', '.join(STAGES)}): {e}") from e
            accepted = ["train"]  # composes after all (e.g. a new key under a dict): never drop an override
        for s in accepted:
            routed[s].append(ov)
    return {s: routed[s] for s in stages}


def plan(overrides: list[str], root: Path | None = None, stages: tuple[str, ...] = STAGES) -> Plan:
    """Route the overrides, pick the experiment folder and build each stage's command line."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"--stages: unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    composer = _Composer()
    try:
        routed = route_overrides(overrides, composer, stages)
        experiment = _experiment_name(overrides)
        if root is None:
            cfg = composer.compose("train", [o for o in routed.get("train", [])
                                             if o.startswith(("experiment=", "paths."))])
            log_dir = Path(str(OmegaConf.select(cfg, "paths.log_dir"))).expanduser()
            stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
            root = log_dir / "pipeline" / experiment / stamp
    finally:
        composer.close()
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
        elif stage == "annotate":
            explicit.append(f"ckpt={p.stage_dir('train') / 'checkpoints' / 'best.pt'}")
        else:
            explicit.append(f"annotations={p.stage_dir('annotate') / 'annotations'}")
        if "logger.name" not in user_keys and stage != "train":  # train names its runs from model and dataset
            explicit.append(f"++logger.name={experiment}-{stage}-{root.name}")
        script = REPO / f"{stage}.py"
        p.commands[stage] = [sys.executable, str(script), *routed[stage], *explicit]
    return p


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
        log.info("%s → %s\n  %s", stage, out, shlex.join(cmd))
        if dry_run:
            continue
        proc = subprocess.run(cmd, env=dict(os.environ))
        if proc.returncode != 0 or not (out / DONE_MARKER).exists():
            raise RuntimeError(f"pipeline stage {stage} failed (exit status {proc.returncode}); its run folder is "
                               f"{out}; fix the cause and re-run with --dir {p.root} to continue")
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
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    try:
        return run(plan(args.overrides, args.dir, stages), dry_run=args.dry_run)
    except (ConfigError, RuntimeError) as e:
        log.error("%s", e)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
