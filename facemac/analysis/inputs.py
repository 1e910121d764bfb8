"""Which datasets to compare: annotation tables (path, ``latest``, W&B artifact) and ground-truth label files."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from omegaconf import DictConfig, ListConfig

from facemac.analysis import readers
from facemac.annotation_resume import looks_unfinished, resume_command, unfinished_message
from facemac.annotation_table import MANIFEST, has_reliability, is_annotation_dir, verify_table
from facemac.data.celeba import read_attr_names, read_celeba_labels
from facemac.data.labelcsv import RESERVED as LABEL_CSV_RESERVED
from facemac.data.labelcsv import header_columns, read_label_csv
from facemac.errors import ConfigError, DataError
from facemac.annotation_table import LABEL_RULES, label_thresholds

log = logging.getLogger(__name__)

GROUPS = ("real", "synthetic")
LABEL_FILE_NAMES = ("labels.csv", "list_attr_celeba.txt", "MAAD_Face.csv")


@dataclass
class DatasetInput:
    """One dataset to analyse: where it is, what it is, and how to stream its rows."""

    name: str
    group: str | None
    kind: str  # "annotations" | "celeba" | "maadface" | "labels"
    path: Path
    attributes: list[str]
    thresholds: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_prediction(self) -> bool:
        """True for the MAC's view (annotation tables), False for human ground-truth labels."""
        return self.kind == "annotations"

    def batches(self, attributes: list[str], batch_size: int,
                min_reliability: float | None = None) -> Iterator[readers.Batch]:
        """Rows of the chosen attributes, a batch at a time."""
        if self.kind == "annotations":
            return readers.iter_parquet_batches(self.files, attributes, batch_size, min_reliability)
        if self.kind == "celeba":
            table = read_celeba_labels(self.path, attributes)
        elif self.kind == "maadface":  # the largest label file: streamed
            return readers.iter_maadface_batches(self.path, attributes, batch_size)
        else:
            table = read_label_csv(self.path, attributes=attributes)
        return readers.iter_table_batches(table, attributes, batch_size)

    def use_label_rule(self, rule: str) -> str | None:
        """Take the thresholds ``rule`` (analyze.label_rule) names from an annotation manifest; returns the set used."""
        if not self.is_prediction:
            return None
        self.thresholds, key = label_thresholds(self.details["manifest_sets"], rule, self.path / "manifest.json")
        self.details["label_thresholds"] = key
        if rule == "counting" and key != LABEL_RULES[rule]:
            log.warning("%s: its checkpoint predates counting thresholds; counting with its reporting `thresholds` "
                        "(re-annotate with a newer checkpoint for faithful rates)", self.name)
        return key

    def describe(self) -> str:
        """One line for logs and the report."""
        extra = f", checkpoint sha256 {self.details['checkpoint_sha256'][:12]}" \
            if self.details.get("checkpoint_sha256") else ""
        if self.details.get("label_thresholds"):
            extra += f", labels: probability > {self.details['label_thresholds']}"
        return f"{self.name} ({self.group}, {self.kind}: {self.path}{extra})"


def sniff_label_file(path: Path) -> str:
    """Label-file kind by content: CelebA attr list, MAAD-Face CSV or demo-style ``labels.csv``."""
    try:
        with open(path, errors="replace") as fh:
            first, second = fh.readline().strip(), fh.readline().strip()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if first.isdigit() and second and "," not in second:
        return "celeba"
    header = [h.strip() for h in first.split(",")]
    if header[:2] == ["Filename", "Identity"]:
        return "maadface"
    if header and header[0] == "path":
        return "labels"
    raise DataError(f"{path}: not a recognised label file (expected list_attr_celeba.txt, MAAD_Face.csv with "
                    f"'Filename,Identity,...' or labels.csv with 'path,identity,<attributes>'); first line: {first[:80]!r}")


def _label_input(path: Path, name: str | None, group: str | None) -> DatasetInput:
    """A ground-truth label file as a dataset (hard 0/1 labels, threshold 0.5)."""
    kind = sniff_label_file(path)
    if kind == "celeba":
        attrs = read_attr_names(path)
    else:
        columns = header_columns(path)  # the readers' own rules for which columns are not attributes
        attrs = ([c for c in columns if c.lower() not in ("filename", "identity")] if kind == "maadface"
                 else [c for c in columns if c not in LABEL_CSV_RESERVED])
    if not attrs:
        raise DataError(f"{path}: no attribute columns found")
    default_group = "real" if kind in ("celeba", "maadface") else None
    return DatasetInput(name=name or f"{path.parent.name}(labels)", group=group or default_group, kind=kind,
                        path=path, attributes=attrs, thresholds={a: 0.5 for a in attrs},
                        details={"base_name": path.parent.name})


def _annotation_input(directory: Path, name: str | None, group: str | None) -> DatasetInput:
    """A verified annotation directory as a dataset."""
    manifest, files = verify_table(directory)
    attrs = list(manifest["attributes"])
    rel = has_reliability(pq.read_schema(files[0]), attrs) if files else False
    details = {k: manifest.get(k) for k in ("checkpoint", "checkpoint_sha256", "num_images", "num_failures",
                                             "mc_samples", "source_format", "root")}
    details["has_reliability"] = rel
    # both threshold sets (facemac.annotation_table); the manifest's own label set until analyze.label_rule picks one
    details["manifest_sets"] = {k: manifest[k] for k in ("attributes", "thresholds", "counting_thresholds",
                                                         "label_thresholds") if k in manifest}
    thresholds, details["label_thresholds"] = label_thresholds(manifest, None, directory / "manifest.json")
    return DatasetInput(name=name or str(manifest["dataset"]), group=group or manifest.get("group"),
                        kind="annotations", path=directory, attributes=attrs, thresholds=thresholds, files=files,
                        details=details)


def expand_path(path: Path, name: str | None = None, group: str | None = None) -> list[DatasetInput]:
    """A path -> datasets, by content: annotation dir, folder of them, label file, or folder holding a label file."""
    if not path.exists():
        raise DataError(f"{path}: input does not exist")
    if path.is_file():
        return [_label_input(path, name, group)]
    if is_annotation_dir(path):
        return [_annotation_input(path, name, group)]
    if looks_unfinished(path):
        raise DataError(unfinished_message(path))
    unfinished = sorted(p for p in path.iterdir() if looks_unfinished(p))
    if unfinished:  # analysing the finished datasets of a folder without the others would be a silent subset
        raise DataError(f"{path}: the annotation of {', '.join(p.name for p in unfinished)} did not finish (no "
                        f"manifest.json: the run was stopped); resume it into the same folder: "
                        f"{resume_command(unfinished[0])}")
    subdirs = sorted(p for p in path.iterdir() if is_annotation_dir(p))
    if subdirs:
        if name is not None:
            raise ConfigError(f"inputs: 'name' given for {path}, which holds {len(subdirs)} datasets; "
                              "name the dataset directories one by one instead")
        return [_annotation_input(p, None, group) for p in subdirs]
    label_files = [path / f for f in LABEL_FILE_NAMES if (path / f).is_file()]
    if label_files:
        return [_label_input(label_files[0], name, group)]
    hint = f"; did you mean {path / 'annotations'}?" if (path / "annotations").is_dir() else ""
    raise DataError(f"{path}: holds no {MANIFEST}, no annotation directories and no label file "
                    f"({', '.join(LABEL_FILE_NAMES)}){hint}")


def resolve_reference(ref: str, log_dir: str, tracker) -> Path:
    """``latest`` | local path | W&B artifact reference (``wandb:<ref>`` or ``entity/project/name:alias``) -> path."""
    from facemac.runs import artifact_reference, latest_run

    if ref == "latest":
        run_dir = latest_run(log_dir, "annotate", "annotations")
        log.info("annotations=latest -> %s", run_dir / "annotations")
        return run_dir / "annotations"
    path = Path(ref).expanduser()
    if path.exists():
        return path
    art = artifact_reference(ref)
    if art is not None:
        folder = tracker.use_artifact(art)
        log.info("W&B artifact %s -> %s", art, folder)
        return folder
    raise DataError(f"{ref}: input path does not exist (and is neither 'latest' nor a W&B artifact reference)")


def input_entries(cfg) -> list[Any]:
    """What ``annotations`` and ``inputs`` name, in order (paths, references or {path, name, group} entries); the one
    rule collect_inputs and facemac.preflight share."""
    entries: list[Any] = []
    annotations = cfg.get("annotations")
    raw_inputs = cfg.get("inputs")
    if isinstance(raw_inputs, (str, dict, DictConfig)):
        raw_inputs = [raw_inputs]
    elif raw_inputs is not None and not isinstance(raw_inputs, (list, tuple, ListConfig)):
        raise ConfigError(f"inputs must be a list of paths or {{path, name, group}} entries, got {raw_inputs!r}")
    if raw_inputs:
        if annotations not in (None, "latest"):
            entries.append(annotations)
        else:
            log.info("inputs given: using them (annotations=%s ignored; put 'latest' in inputs to add it)", annotations)
        entries.extend(raw_inputs)
    elif annotations is not None:
        entries.append(annotations)
    if not entries:
        raise ConfigError("nothing to analyse: set annotations=<folder>|latest or inputs=[...]")
    return entries


def collect_inputs(cfg, tracker) -> list[DatasetInput]:
    """Every dataset named by ``annotations`` and ``inputs``, with names checked unique and groups resolved."""
    log_dir = str(cfg.paths.log_dir)
    entries = input_entries(cfg)
    datasets: list[DatasetInput] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            datasets += expand_path(resolve_reference(entry, log_dir, tracker))
        elif hasattr(entry, "get"):
            if not entry.get("path"):
                raise ConfigError(f"inputs[{i}]: a dict entry needs 'path' (and optionally 'name', 'group')")
            unknown = set(entry.keys()) - {"path", "name", "group"}
            if unknown:
                raise ConfigError(f"inputs[{i}]: unknown keys {sorted(unknown)}; allowed: path, name, group")
            datasets += expand_path(resolve_reference(str(entry["path"]), log_dir, tracker),
                                    entry.get("name"), entry.get("group"))
        else:
            raise ConfigError(f"inputs[{i}]: expected a path string or a {{path, name, group}} mapping, got {entry!r}")

    names = [d.name for d in datasets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"inputs: dataset names {dupes} appear more than once; give entries a distinct 'name'")
    by_name = {d.name: d for d in datasets}
    for d in datasets:  # a label file beside an annotated dataset shares its group
        if d.group is None and d.details.get("base_name") in by_name:
            d.group = by_name[d.details["base_name"]].group
    overrides = dict(cfg.analyze.get("groups") or {})
    unknown = sorted(set(overrides) - set(by_name))
    if unknown:
        raise ConfigError(f"analyze.groups: {unknown} are not datasets of this analysis; known: {sorted(by_name)}")
    for name, group in overrides.items():
        by_name[name].group = str(group)
    for d in datasets:
        if d.group is None:
            d.group = "unknown"
            log.warning("dataset %s has no group; set analyze.groups={%s: real|synthetic} to pool it", d.name, d.name)
    return datasets
