"""Pre-flight: every value a planned stage needs from outside the pipeline, checked before the first stage runs.

``python -m facemac.pipeline experiment=paper dataset.root=…`` without target roots used to train for 30 ViT-B epochs
and then stop at annotate. Now each stage has one check here (``check_train``, ``check_annotate``,
``check_analyze``) that reads only what that stage reads, from the config composed exactly as the stage's command
composes it (facemac.pipeline.plan), by the stage's own rules (facemac.data.registry's roots and files,
facemac.annotation.targets' ``targets.<name>.root`` else ``roots.<name>``, facemac.annotation.ckpt_ref,
facemac.analysis.inputs). Every problem is one line naming the key and the file, and all of them are listed, not
just the first. Paths that an earlier stage of the same pipeline writes (``produced``) are not looked for, and W&B
references and generated demo data are left to the stage. The checks only look at the file system (exists, is a file
or a folder): reading and verifying the files stays with the stages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from facemac.config import to_plain
from facemac.errors import ConfigError, FacemacError
from facemac.run_state import one_line

Produced = Mapping[Path, str]  # a path an earlier planned stage writes → that stage's name


@dataclass
class StageChecks:
    """What one stage's pre-flight looked at: found values, values left to the stage, and problems (one line each)."""

    stage: str
    found: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self, key: str, fn: Callable[[], Any], describe: Callable[[Any], str | None] = str) -> tuple[bool, Any]:
        """Run one check: its value, described, goes to ``found`` (unless ``describe`` gives None); a FacemacError
        becomes a problem line that names ``key`` (or the key of the same section it names). Returns (passed, value)."""
        try:
            value = fn()
        except (FacemacError, OmegaConfBaseException) as e:  # OmegaConf: an interpolation that does not resolve
            msg = one_line(e)
            named = msg.startswith((key, key.split(".", 1)[0] + "."))  # names the key, or another of its section
            self.problems.append(msg if named else f"{key}: {msg}")
            return False, None
        text = describe(value)
        if text is not None:
            self.found.append(text)
        return True, value

    def lines(self) -> list[str]:
        """For --dry-run: one line per value, marked ok / later / error."""
        return ([f"  ok     {f}" for f in self.found] + [f"  later  {f}" for f in self.later]
                + [f"  error  {p}" for p in self.problems])


class PreflightError(ConfigError):
    """Pre-flight found problems: the message is a head line and then one line per problem."""


# --- data roots and files, by format (the readers' own rules in facemac/data/registry.py) -------------------------

def dataset_paths(ds: Mapping[str, Any], prefix: str, align: str | None = None) -> str:
    """Raise what ``build_table(ds, prefix=prefix)`` would find missing on disk before reading anything; return what
    was found. ``align`` (training's data.align): ``arcface`` on loose crops needs the landmark file."""
    from facemac.data import registry as R
    from facemac.data.layout import require_dir, require_file

    fmt = ds.get("format")
    if fmt in R._UNSET:
        raise ConfigError(f"{prefix}.format is not set; choose one of {', '.join(R.FORMATS)}")
    if fmt not in R.READERS:
        raise ConfigError(f"{prefix}.format={fmt!r} is unknown; choose one of {', '.join(R.FORMATS)}")
    if ds.get("demo") and R._path_value(dict(ds), "root") is None:
        return f"{prefix}: the procedural demo faces (generated under paths.cache_dir on first use)"
    cfg = dict(ds)
    if fmt == "celeba":
        from facemac.data import celeba as C

        base = C.find_celeba_dir(R._require_root(cfg, fmt, prefix, must_be_dir=True))
        require_dir(base / C.IMAGES_DIR, C.CELEBA_LAYOUT)
        require_file(base / C.ATTR_FILE, C.CELEBA_LAYOUT)
        require_file(base / C.PARTITION_FILE, C.CELEBA_LAYOUT)
        if align == "arcface" and str(cfg.get("geometry") or "loose") not in ("arcface_112", "detect"):
            require_file(base / C.LANDMARKS_FILE, f"CelebA's 5-point landmarks, which the ArcFace warp "
                                                  f"(data.align=arcface) of its loose crops needs")
        return f"{prefix}.root={base} (CelebA layout)"
    if fmt == "maadface":
        from facemac.data import maadface as M

        root = R._require_root(cfg, fmt, prefix, must_be_dir=True)
        images = M._find_images_dir(root, cfg.get("images_dir"))
        require_file(root / str(cfg.get("csv") or "MAAD_Face.csv"), "the MAAD-Face label CSV (dataset.csv)")
        landmarks = cfg.get("landmarks", "auto") if cfg.get("align", "arcface") == "arcface" else None
        if landmarks not in (None, False, ""):
            M._landmark_paths(root, images, landmarks)
        return f"{prefix}.root={root} (MAAD-Face CSV, images {images}{', landmarks' if landmarks else ''})"
    if fmt in ("filelist", "labels_csv"):
        file, root = R._file_and_root(cfg, fmt, prefix)
        base = root if root is not None else file.parent
        found = f"{prefix}.file={file}"
    else:  # folders, recordio
        base = R._require_root(cfg, fmt, prefix, must_be_dir=fmt == "folders")
        found = f"{prefix}.root={base}"
        labels = R._path_value(cfg, "labels") if fmt == "folders" else None
        if labels is not None:  # a ground-truth label CSV: a bare name means the file beside the identity folders
            labels = base / labels if not labels.is_absolute() and (base / labels).exists() else labels
            require_file(labels, f"the label CSV {prefix}.labels names (path, identity, <attributes>)")
            found += f", labels {labels}"
    if fmt != "recordio" and cfg.get("landmarks") not in (*R._UNSET, False):
        found += ", landmarks " + ", ".join(str(p) for p in R._landmark_files(cfg, prefix, base))
    return found


def _tracking_on(cfg: DictConfig) -> bool:
    return "logger" in cfg and cfg.logger is not None and str(cfg.logger.backend) != "none"


def _wandb_ref(ref: str) -> str | None:
    """A W&B artifact reference that is not a local path (fetched by the stage itself), else None."""
    from facemac.runs import artifact_reference

    return None if Path(ref).expanduser().exists() else artifact_reference(ref)


def _produced_by(ref: str, produced: Produced) -> str | None:
    path = Path(str(ref)).expanduser().resolve()
    return produced.get(path)


# --- one check per stage -------------------------------------------------------------------------------------------

def check_train(cfg: DictConfig, produced: Produced | None = None) -> StageChecks:
    """train.py's inputs: the dataset's root and files, model.weights, and an explicit train.resume checkpoint (timm's
    hub weights stay with the stage's own start-up check, the first thing it does)."""
    out = StageChecks("train")
    if "dataset" not in cfg or not cfg.dataset:
        out.problems.append("dataset is not set; choose one with dataset=<name> (conf/dataset/)")
    else:
        out.check("dataset.root", lambda: dataset_paths(to_plain(cfg.dataset), "dataset", str(cfg.data.align)))
    weights = cfg.model.weights if "weights" in cfg.model else None
    if weights:
        from facemac.models.weights import resolve_weights

        out.check("model.weights", lambda: resolve_weights({"weights": weights}, download=False, checksum=False),
                  lambda src: f"model.weights={src.file}")
    resume = cfg.train.resume
    if resume not in (None, "", False, "auto"):
        path = Path(str(resume)).expanduser()

        def _resume() -> str:
            if not path.is_file():
                raise ConfigError(f"train.resume={resume!r}: no such checkpoint")
            return f"train.resume={path}"

        out.check("train.resume", _resume)
    return out


def check_annotate(cfg: DictConfig, produced: Produced | None = None) -> StageChecks:
    """annotate.py's inputs: every target's root (``targets.<name>.root`` else ``roots.<name>``) and files, and the
    checkpoint unless an earlier stage writes it."""
    from facemac.annotation.ckpt_ref import resolve_checkpoint
    from facemac.annotation.targets import DEMO_TARGETS, target_entries, target_spec
    from facemac.settings import build_settings

    out = StageChecks("annotate")
    produced = produced or {}
    settings = build_settings(cfg, "annotate")  # the pipeline has built it once already: values are valid here
    _, entries = out.check("targets", lambda: target_entries(settings), lambda _: None)
    roots = settings.roots
    for name, entry in (entries or {}).items():
        key = f"targets.{name}"
        ok, spec = out.check(key, lambda: target_spec(name, entry, roots.get(name)), lambda _: None)
        if not ok:
            continue
        if spec.root is None and name in DEMO_TARGETS:
            out.later.append(f"{key}: the procedural demo faces (generated under paths.cache_dir on first use)")
            continue
        out.check(key, lambda: dataset_paths(spec.reader_cfg(), key))
    ref = cfg.ckpt
    if ref is not None and _produced_by(ref, produced):
        out.later.append(f"ckpt={ref} (written by {_produced_by(ref, produced)} in this pipeline)")
    elif ref is not None and _wandb_ref(str(ref)) and _tracking_on(cfg):
        out.later.append(f"ckpt={ref} (a W&B artifact, fetched when the stage runs)")
    else:
        out.check("ckpt", lambda: resolve_checkpoint(ref, str(cfg.paths.log_dir))[0], lambda p: f"ckpt={ref} → {p}")
    return out


def check_analyze(cfg: DictConfig, produced: Produced | None = None) -> StageChecks:
    """analyze.py's inputs: ``annotations`` and every ``inputs`` entry unless an earlier stage writes it, and the
    audit folder if ``analyze.audit`` is set."""
    from facemac.analysis.inputs import input_entries
    from facemac.runs import latest_run

    out = StageChecks("analyze")
    produced = produced or {}
    _, entries = out.check("annotations", lambda: input_entries(cfg), lambda _: None)
    entries = entries or []
    lead = 1 if (cfg.annotations not in (None, "latest") or not cfg.inputs) else 0  # as input_entries takes them
    keys = ["annotations"] * lead + [f"inputs[{j}]" for j in range(len(entries) - lead)]
    log_dir = str(cfg.paths.log_dir)
    for key, entry in zip(keys, entries):
        ref = str(entry.path) if hasattr(entry, "keys") and "path" in entry else str(entry)
        if _produced_by(ref, produced):
            out.later.append(f"{key}={ref} (written by {_produced_by(ref, produced)} in this pipeline)")
        elif ref == "latest":
            out.check(key, lambda: latest_run(log_dir, "annotate", "annotations"),
                      lambda run: f"{key}=latest → {run / 'annotations'}")
        elif _wandb_ref(ref) and _tracking_on(cfg):
            out.later.append(f"{key}={ref} (a W&B artifact, fetched when the stage runs)")
        else:
            out.check(key, lambda: _existing(key, ref))
    audit = getattr(cfg.analyze, "audit", None)  # analyze.audit is being built; absent from older configs
    if audit and not isinstance(audit, str):  # a mapping {dataset: csv}: the stage checks each file
        out.later.append("analyze.audit={…} (a mapping of audit files, checked by the stage)")
    elif audit and _produced_by(str(audit), produced):
        out.later.append(f"analyze.audit={audit} (written by {_produced_by(str(audit), produced)} in this pipeline)")
    elif audit:
        path = Path(str(audit)).expanduser()

        def _audit() -> str:
            if not path.is_dir():
                what = "is not a folder" if path.exists() else "does not exist"
                raise ConfigError(f"analyze.audit={audit}: {path} {what}; expected a folder of <dataset>.csv audit "
                                  "files (docs/audit.md)")
            files = sorted(p.name for p in path.glob("*.csv"))
            if not files:
                raise ConfigError(f"analyze.audit={audit}: {path} holds no <dataset>.csv audit file (docs/audit.md)")
            return f"analyze.audit={path} ({', '.join(files)})"

        out.check("analyze.audit", _audit)
    return out


def _existing(key: str, ref: str) -> str:
    """An input path the stage reads as it is: it must exist (what it holds, the stage verifies)."""
    path = Path(ref).expanduser()
    if not path.exists():
        wb = " (a W&B artifact reference needs logger=wandb)" if _wandb_ref(ref) else ""
        raise ConfigError(f"{key}={ref}: no such file or folder{wb}; pass an annotations folder, a label file, "
                          "latest or a W&B artifact reference")
    return f"{key}={path}"


CHECKS: dict[str, Callable[[DictConfig, Produced | None], StageChecks]] = {
    "train": check_train, "annotate": check_annotate, "analyze": check_analyze}


def problems_error(checks: list[StageChecks]) -> PreflightError | None:
    """One error listing every problem of every stage (None when there is none)."""
    lines = [f"{c.stage}: {p}" for c in checks for p in c.problems]
    if not lines:
        return None
    head = (f"pre-flight found {len(lines)} problem{'s' if len(lines) > 1 else ''}; nothing was run "
            "(python -m facemac.pipeline … --dry-run lists every check)")
    return PreflightError("\n".join([head, *(f"  {line}" for line in lines)]))


__all__ = ["StageChecks", "PreflightError", "CHECKS", "check_train", "check_annotate", "check_analyze",
           "dataset_paths", "problems_error"]
