"""The audit file contract, in one place: what ``python -m facemac.audit`` writes as a template, what a person (or the
demo's simulated person) fills in, and what the analysis reads with ``analyze.audit`` (docs/audit.md "File format").

An audit of one annotated dataset is ``<dataset>.csv`` with an optional sidecar ``<dataset>.json``:

* ``path`` (required): the annotation table's ``path`` of the face (relative path, or record key for packed formats);
* ``identity`` (optional): as in the annotation table;
* one column per judged attribute, named exactly as in the annotation: ``1`` / ``0`` or ``1`` / ``-1`` (one coding per
  file); a blank cell is *not judged*, never a negative;
* sampler columns (optional): ``stratum`` (the stratum the face was drawn from), ``stratum_size`` (rows of the annotated
  dataset in that stratum when the sample was drawn; the same on every row of a stratum) and ``weight`` (the design
  weight, stratum_size / faces drawn from the stratum); ``note`` (free text, ignored).

Without sampler columns the rows are a simple random sample of the annotated rows. With ``stratum`` and
``stratum_size``, each stratum is a simple random sample of its rows, and estimates combine the strata by their sizes
(per attribute, over the rows judged for it); the sampler draws at least one face from every stratum (the sidecar
lists them all, with their sizes), since a stratum without audited faces cannot be corrected. With ``weight`` alone,
rows are weighted by it (Hajek).

The sidecar records how the sample was drawn (design, seed, the annotation it was drawn from); a reader checks that the
audit still fits the annotation it is used with. Kept light (numpy, pandas; no torch).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facemac.atomic import write_text_atomic
from facemac.errors import DataError

FORMAT = "facemac-audit"
VERSION = 1
PATH = "path"
IDENTITY = "identity"
STRATUM = "stratum"
STRATUM_SIZE = "stratum_size"
WEIGHT = "weight"
NOTE = "note"
SAMPLER_COLUMNS = (STRATUM, STRATUM_SIZE, WEIGHT)
RESERVED = (PATH, IDENTITY, *SAMPLER_COLUMNS, NOTE)
LAYOUT = ("a CSV with a header row: path, [identity], [stratum, stratum_size, weight], [note], then one column per "
          "attribute holding 1 / 0 (or 1 / -1); blank = not judged")


def csv_name(dataset: str) -> str:
    """File name of a dataset's audit inside an audit folder."""
    return f"{dataset}.csv"


def sidecar_path(csv_path: str | Path) -> Path:
    """The sidecar beside an audit CSV (``<dataset>.json``)."""
    return Path(csv_path).with_suffix(".json")


@dataclass(frozen=True)
class AuditDesign:
    """How an audit sample was drawn; stored in the sidecar, so an estimator never has to guess.

    ``strata`` maps each stratum to ``{"size": rows of the dataset in it, "sampled": faces drawn from it}``; ``kind`` is
    ``simple`` (one simple random sample of the rows) or ``stratified``; ``annotation`` identifies the table the sample
    was drawn from (``checkpoint_sha256``, ``num_images``), ``rule`` says in words how strata were formed.
    """

    dataset: str
    kind: str = "simple"
    size: int = 0
    seed: int | None = None
    rule: str = ""
    strata: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    annotation: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "dataset": self.dataset, "kind": self.kind, "size": self.size,
                "seed": self.seed, "rule": self.rule, "strata": {k: dict(v) for k, v in self.strata.items()},
                "annotation": dict(self.annotation)}

    @classmethod
    def from_json(cls, doc: Any, where: Path) -> AuditDesign:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise DataError(f"{where}: not a facemac audit sidecar (expected \"format\": {FORMAT!r})")
        if doc.get("version") != VERSION:
            raise DataError(f"{where}: audit sidecar version {doc.get('version')!r} is not supported ({VERSION})")
        if doc.get("kind") not in ("simple", "stratified"):
            raise DataError(f"{where}: kind {doc.get('kind')!r}; expected 'simple' or 'stratified'")
        return cls(dataset=str(doc.get("dataset", "")), kind=str(doc["kind"]), size=int(doc.get("size", 0)),
                   seed=doc.get("seed"), rule=str(doc.get("rule", "")), strata=dict(doc.get("strata") or {}),
                   annotation=dict(doc.get("annotation") or {}))


@dataclass
class Audit:
    """One dataset's audit, validated: per row the face's path, identity, sampler fields and judgements.

    ``labels`` [n, A] float32 0/1 and ``judged`` [n, A] bool are in ``attributes`` order (the columns present in the
    file); ``strata``/``weights`` are None when the file has no sampler columns (a simple random sample).
    """

    dataset: str
    source: Path
    paths: list[str]
    identities: list[str] | None
    attributes: list[str]
    labels: np.ndarray
    judged: np.ndarray
    strata: np.ndarray | None = None          # [n] str
    stratum_sizes: dict[str, int] | None = None
    weights: np.ndarray | None = None          # [n] float64
    design: AuditDesign | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def column(self, attribute: str) -> tuple[np.ndarray, np.ndarray]:
        """(labels, judged) of one attribute."""
        j = self.attributes.index(attribute)
        return self.labels[:, j], self.judged[:, j]

    @property
    def num_judgements(self) -> int:
        return int(self.judged.sum())


def write_template(path: str | Path, paths: Sequence[str], identities: Sequence[str | None] | None,
                   attributes: Sequence[str], strata: Sequence[str] | None = None,
                   stratum_sizes: Mapping[str, int] | None = None, design: AuditDesign | None = None) -> Path:
    """An unfilled audit: every attribute cell blank (not judged), sampler columns filled; plus the sidecar."""
    clash = [a for a in attributes if a in RESERVED]
    if clash:
        raise ValueError(f"attribute names {clash} clash with the audit's reserved columns {RESERVED}")
    frame = pd.DataFrame({PATH: list(paths)})
    frame[IDENTITY] = [("" if i is None else i) for i in identities] if identities is not None else ""
    if strata is not None:
        if stratum_sizes is None:
            raise ValueError("strata need their sizes (rows of the dataset per stratum)")
        drawn = pd.Series(list(strata)).value_counts().to_dict()
        frame[STRATUM] = list(strata)
        frame[STRATUM_SIZE] = [int(stratum_sizes[s]) for s in strata]
        frame[WEIGHT] = [int(stratum_sizes[s]) / drawn[s] for s in strata]
    for a in attributes:
        frame[a] = ""
    path = Path(path)
    write_text_atomic(path, frame.to_csv(index=False, lineterminator="\n"))
    if design is not None:
        write_text_atomic(sidecar_path(path), json.dumps(design.to_json(), indent=1))
    return path


def write_filled(path: str | Path, audit_rows: pd.DataFrame) -> Path:
    """A filled audit (a frame in the template's columns; attribute cells 1 / 0 or empty), atomically."""
    return write_text_atomic(path, audit_rows.to_csv(index=False, lineterminator="\n"))


def read_audit(path: str | Path, dataset: str, attributes: Collection[str],
               known_paths: Collection[str] | None = None, num_images: int | None = None) -> Audit:
    """Read and validate one audit CSV (and its sidecar if present); every mistake is a DataError naming the file.

    ``attributes``: the annotation's attributes (a column naming anything else is refused); ``known_paths``: the
    annotation table's paths (an audited face outside it is refused); ``num_images``: the table's row count, checked
    against the stratum sizes and the sidecar. Refuses a file with no judgement at all (a template nobody filled in).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such audit file; expected {LAYOUT}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be parsed as an audit ({e}); expected {LAYOUT}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if PATH not in frame.columns:
        raise DataError(f"{path}: no 'path' column (header: {', '.join(frame.columns)}); expected {LAYOUT}")
    if frame.columns.duplicated().any():
        raise DataError(f"{path}: column {frame.columns[frame.columns.duplicated()][0]!r} appears twice")
    if len(frame) == 0:
        raise DataError(f"{path}: header only, no audited faces")
    attr_cols = [c for c in frame.columns if c not in RESERVED]
    unknown = [c for c in attr_cols if c not in set(attributes)]
    if unknown:
        raise DataError(f"{path}: columns {unknown[:5]} are neither audit columns ({', '.join(RESERVED)}) nor "
                        f"attributes of {dataset!r} (e.g. {', '.join(list(attributes)[:5])}, …)")
    paths = [p.strip().replace("\\", "/") for p in frame[PATH]]
    if "" in paths:
        raise DataError(f"{path}, line {paths.index('') + 2}: empty path")
    dup = pd.Series(paths).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{path}, line {i + 2}: face {paths[i]!r} is audited twice")
    if known_paths is not None:
        known = known_paths if isinstance(known_paths, (set, frozenset)) else set(known_paths)
        missing = [i for i, p in enumerate(paths) if p not in known]
        if missing:
            i = missing[0]
            raise DataError(f"{path}, line {i + 2}: {paths[i]!r} is not a face of the annotation of {dataset!r} "
                            f"({len(missing)} of {len(paths)} audited paths are not; an audit of another dataset?)")
    labels, judged = _parse_judgements(frame, attr_cols, path)
    if attr_cols and not judged.any():
        raise DataError(f"{path}: no face is judged on any attribute (every cell blank): an unfilled template is "
                        "not an audit; fill it in with the labelling page (docs/audit.md)")
    if not attr_cols:
        raise DataError(f"{path}: no attribute columns; expected {LAYOUT}")
    identities = None
    if IDENTITY in frame.columns:
        identities = [s.strip() for s in frame[IDENTITY]]
    design = None
    side = sidecar_path(path)
    if side.is_file():
        try:
            design = AuditDesign.from_json(json.loads(side.read_text()), side)
        except json.JSONDecodeError as e:
            raise DataError(f"{side}: not valid JSON ({e})") from None
        drawn_from = design.annotation.get("num_images")
        if num_images is not None and drawn_from is not None and int(drawn_from) != int(num_images):
            raise DataError(f"{side}: the sample was drawn from {drawn_from} annotated faces, but the annotation of "
                            f"{dataset!r} holds {num_images}; draw a new audit for this annotation")
    strata, sizes, weights = _sampler_fields(frame, path, num_images)
    return Audit(dataset=dataset, source=path, paths=paths, identities=identities, attributes=attr_cols,
                 labels=labels, judged=judged, strata=strata, stratum_sizes=sizes, weights=weights, design=design)


def _parse_judgements(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Cells → (labels 0/1, judged): 1 / 0, or 1 / -1 when the file uses -1 anywhere (never both 0 and -1)."""
    text = frame[list(columns)].apply(lambda c: c.str.strip()).to_numpy(dtype=object) if columns else \
        np.empty((len(frame), 0), dtype=object)
    valid = {"", "1", "0", "-1", "1.0", "0.0", "-1.0", "+1"}
    bad = ~np.isin(text, list(valid))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}, line {r + 2}, column {columns[c]!r}: {text[r, c]!r} is not a judgement; expected "
                        "1 / 0 (or 1 / -1), blank for not judged")
    num = np.where(text == "", "nan", text).astype(np.float64)
    has_minus, has_zero = (num == -1).any(), (num == 0).any()
    if has_minus and has_zero:
        r, c = np.argwhere(num == -1)[0]
        raise DataError(f"{path}, line {r + 2}, column {columns[c]!r}: -1 in a file that also uses 0; use one coding "
                        "per file: 1 / 0 or 1 / -1")
    judged = ~np.isnan(num)
    return (num == 1).astype(np.float32), judged


def _sampler_fields(frame: pd.DataFrame, path: Path, num_images: int | None
                    ) -> tuple[np.ndarray | None, dict[str, int] | None, np.ndarray | None]:
    """(strata, {stratum: size}, weights) from the sampler columns; consistency checked."""
    weights = None
    if WEIGHT in frame.columns:
        w = pd.to_numeric(frame[WEIGHT].str.strip(), errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(w) & (w > 0)):
            i = int(np.flatnonzero(~(np.isfinite(w) & (w > 0)))[0])
            raise DataError(f"{path}, line {i + 2}: weight {frame[WEIGHT].iat[i]!r} is not a positive number")
        weights = w
    if STRATUM not in frame.columns:
        if STRATUM_SIZE in frame.columns:
            raise DataError(f"{path}: a {STRATUM_SIZE!r} column without a {STRATUM!r} column")
        return None, None, weights
    strata = frame[STRATUM].str.strip().to_numpy(dtype=object)
    if (strata == "").any():
        i = int(np.flatnonzero(strata == "")[0])
        raise DataError(f"{path}, line {i + 2}: empty stratum")
    if STRATUM_SIZE not in frame.columns:
        raise DataError(f"{path}: a {STRATUM!r} column needs a {STRATUM_SIZE!r} column (rows of the dataset per "
                        "stratum); re-draw the sample with python -m facemac.audit")
    size = pd.to_numeric(frame[STRATUM_SIZE].str.strip(), errors="coerce").to_numpy(np.float64)
    sizes: dict[str, int] = {}
    for i, (s, n) in enumerate(zip(strata, size)):
        if not (np.isfinite(n) and n >= 1 and n == int(n)):
            raise DataError(f"{path}, line {i + 2}: stratum_size {frame[STRATUM_SIZE].iat[i]!r} is not a count")
        if sizes.setdefault(s, int(n)) != int(n):
            raise DataError(f"{path}, line {i + 2}: stratum {s!r} has sizes {sizes[s]} and {int(n)}")
    drawn = pd.Series(strata).value_counts()
    over = [s for s in sizes if drawn[s] > sizes[s]]
    if over:
        raise DataError(f"{path}: stratum {over[0]!r} has {drawn[over[0]]} audited faces but only {sizes[over[0]]} rows")
    if num_images is not None and sum(sizes.values()) > num_images:
        raise DataError(f"{path}: stratum sizes add up to {sum(sizes.values())}, more than the {num_images} faces of "
                        "the annotation; draw a new audit for this annotation")
    return strata.astype(str), sizes, weights


__all__ = ["Audit", "AuditDesign", "read_audit", "write_template", "write_filled", "csv_name", "sidecar_path",
           "RESERVED", "SAMPLER_COLUMNS", "FORMAT", "VERSION", "LAYOUT"]
