"""The annotation table contract, in one place: what the annotate stage writes, the analysis reads and the test/benchmark
fixtures imitate (DESIGN.md "Annotation table", docs/annotate.md "Output").

A table is one directory: Parquet parts (``part-XXXXX.parquet``), ``failures.csv`` (``path,reason``) and
``manifest.json``, written last (it marks the table finished). Parts hold ``path``, ``identity`` (nullable), one
float32 probability column per attribute named exactly as the attribute and, with MC dropout, one float32
``reliability:<attribute>`` column each; with ``geometry: detect``, the detection behind each row as float32
``detect:<field>`` columns (DETECT_COLUMNS: box, score, face count, 5 points in pixels of the image file), so the
crop the MAC saw can be rebuilt and audited without detecting again. Readers select the attribute columns by name and
never see the others. Labels are never stored: ``probability > threshold`` with the manifest's thresholds. Kept light
(pyarrow, no torch) so the analysis never imports the annotation package.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facemac.annotation_resume import incomplete_reason, looks_unfinished, unfinished_message
from facemac.atomic import atomic_write, write_text_atomic
from facemac.errors import DataError
from facemac.hashing import file_sha256

FORMAT = "facemac-annotations"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST = "manifest.json"
FAILURES = "failures.csv"
FAILURE_COLUMNS = ("path", "reason")
PART_GLOB = "part-*.parquet"
PATH = "path"
IDENTITY = "identity"
RELIABILITY_PREFIX = "reliability:"
DETECT_PREFIX = "detect:"
# the detection stored per row for geometry: detect (facemac.data.detect.DETECT_FIELDS, in this order): the picked
# face's box (x0, y0, x1, y1), its detector score, how many faces scored >= the detector's min_score, and its 5 points
# (p1 left eye, p2 right eye, p3 nose, p4 left and p5 right mouth corner; x, y), all in pixels of the image file
DETECT_FIELDS = ("x0", "y0", "x1", "y1", "score", "faces",
                 "p1x", "p1y", "p2x", "p2y", "p3x", "p3y", "p4x", "p4y", "p5x", "p5y")
DETECT_COLUMNS = tuple(DETECT_PREFIX + f for f in DETECT_FIELDS)
LABEL_RULE = "probability > threshold"
# Two threshold sets per attribute: `thresholds` tuned for the MAC's reporting metric (balanced accuracy, mA) and
# `counting_thresholds`, chosen so counts of positives stay faithful (train.counting_rule). `label_thresholds` names the
# set the labels use (the counting set when the checkpoint had one); manifests from before it have `thresholds` only.
REPORTING = "thresholds"
COUNTING = "counting_thresholds"
LABEL_RULES = {"counting": COUNTING, "reporting": REPORTING}  # analyze.label_rule / evaluate --label-rule -> key
# Keys a reader cannot do without; the writer adds provenance (source_format, root, checkpoint, checkpoint_sha256,
# num_images, num_failures, mc_samples, label_rule) and the annotate stage its own extras (num_listed, shard_size, …).
REQUIRED_KEYS = ("dataset", "group", "attributes", "thresholds", "parts", "complete")


# The MAC's validation predictions (facemac.analysis.correction.validation): ``validation.parquet`` beside the manifest,
# listed under manifest["validation"] = {file, rows, identities, sha256, split}; columns ``identity`` (int64 codes),
# one float32 probability column per attribute, one int8 ``label:<attribute>`` column each (1/0, -1 unknown).
VALIDATION_FILE = "validation.parquet"
VALIDATION_KEY = "validation"
LABEL_PREFIX = "label:"


def write_validation(directory: str | Path, identity: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                     attributes: Sequence[str], split: str = "val") -> dict[str, Any]:
    """validation.parquet (atomic) → its manifest entry (``manifest[VALIDATION_KEY]``), hash taken from the file."""
    identity = np.asarray(identity, dtype=np.int64)
    labels, probs = np.asarray(labels, dtype=np.int8), np.asarray(probs, dtype=np.float32)
    n, a = len(identity), len(attributes)
    if labels.shape != (n, a) or probs.shape != (n, a):
        raise ValueError(f"validation arrays disagree: {n} rows, {a} attributes, labels {labels.shape}, "
                         f"probs {probs.shape}")
    cols = {IDENTITY: pa.array(identity)}
    cols.update({att: pa.array(probs[:, j]) for j, att in enumerate(attributes)})
    cols.update({LABEL_PREFIX + att: pa.array(labels[:, j]) for j, att in enumerate(attributes)})
    path = Path(directory) / VALIDATION_FILE
    with atomic_write(path) as f:
        pq.write_table(pa.table(cols), f, compression="zstd")
    return {"file": VALIDATION_FILE, "rows": n, "identities": int(len(np.unique(identity))),
            "sha256": file_sha256(path), "split": split}


def read_validation(directory: str | Path, entry: Mapping[str, Any],
                    check_sha: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(identity int64 [N], labels int8 [N, A], probs float32 [N, A], attributes) of a table's validation.parquet,
    after checking the manifest entry's rows and SHA-256; DataError naming the file otherwise."""
    path = Path(directory) / str(entry.get("file", VALIDATION_FILE))
    if not path.is_file():
        raise DataError(f"{path}: listed in {MANIFEST} under {VALIDATION_KEY!r} but missing")
    if check_sha and "sha256" in entry and file_sha256(path) != entry["sha256"]:
        raise DataError(f"{path}: SHA-256 does not match {MANIFEST} (file changed after annotation)")
    try:
        t = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from exc
    names = t.schema.names
    attributes = [c for c in names if c != IDENTITY and not c.startswith(LABEL_PREFIX)]
    missing = [c for c in [IDENTITY] + [LABEL_PREFIX + x for x in attributes] if c not in names]
    if missing or t.num_rows != int(entry.get("rows", t.num_rows)):
        raise DataError(f"{path}: expected columns identity, <attribute>, label:<attribute> and {entry.get('rows')} "
                        f"rows; found {t.num_rows} rows, missing {missing[:3]}")
    identity = t.column(IDENTITY).to_numpy().astype(np.int64)
    probs = np.stack([t.column(x).to_numpy() for x in attributes], 1).astype(np.float32) if attributes else \
        np.zeros((t.num_rows, 0), np.float32)
    labels = np.stack([t.column(LABEL_PREFIX + x).to_numpy() for x in attributes], 1).astype(np.int8) \
        if attributes else np.zeros((t.num_rows, 0), np.int8)
    return identity, labels, probs, attributes


def part_name(index: int) -> str:
    """File name of part ``index``; the shard index (not the rank) names it, so ranks never collide."""
    return f"part-{index:05d}.parquet"


def reliability_column(attribute: str) -> str:
    """Column holding an attribute's MC-dropout reliability."""
    return RELIABILITY_PREFIX + attribute


def part_schema(attributes: Sequence[str], with_reliability: bool, with_detection: bool = False) -> pa.Schema:
    """path, identity (nullable), one float32 probability per attribute, then optional reliability and detection
    columns."""
    fields = [pa.field(PATH, pa.string(), nullable=False), pa.field(IDENTITY, pa.string())]
    fields += [pa.field(a, pa.float32(), nullable=False) for a in attributes]
    if with_reliability:
        fields += [pa.field(reliability_column(a), pa.float32(), nullable=False) for a in attributes]
    if with_detection:
        fields += [pa.field(c, pa.float32(), nullable=False) for c in DETECT_COLUMNS]
    return pa.schema(fields)


def has_detection(schema: pa.Schema) -> bool:
    """True when a part carries the detection columns of geometry: detect."""
    return all(c in schema.names for c in DETECT_COLUMNS)


def build_part(paths: Sequence[str], identities: Sequence[str | None], probs: np.ndarray,
               attributes: Sequence[str], reliability: np.ndarray | None = None,
               detections: np.ndarray | None = None) -> pa.Table:
    """Column arrays → a table with the contract's schema (row count checked against every array); ``detections``:
    float32 [N, len(DETECT_FIELDS)]."""
    n = len(paths)
    probs = np.asarray(probs, dtype=np.float32)
    if len(identities) != n or probs.shape != (n, len(attributes)):
        raise ValueError(f"part arrays disagree: {n} paths, {len(identities)} identities, probs {probs.shape}")
    cols: list[pa.Array] = [pa.array(list(paths), pa.string()), pa.array(list(identities), pa.string())]
    cols += [pa.array(probs[:, j]) for j in range(len(attributes))]
    if reliability is not None:
        reliability = np.asarray(reliability, dtype=np.float32)
        if reliability.shape != probs.shape:
            raise ValueError(f"part arrays disagree: probs {probs.shape}, reliability {reliability.shape}")
        cols += [pa.array(reliability[:, j]) for j in range(len(attributes))]
    if detections is not None:
        detections = np.asarray(detections, dtype=np.float32).reshape(-1, len(DETECT_FIELDS))
        if len(detections) != n:
            raise ValueError(f"part arrays disagree: {n} paths, {len(detections)} detections")
        cols += [pa.array(detections[:, j]) for j in range(len(DETECT_FIELDS))]
    return pa.Table.from_arrays(cols, schema=part_schema(attributes, reliability is not None,
                                                         detections is not None))


def write_part(table: pa.Table, path: str | Path) -> Path:
    """One part, all or nothing (facemac.atomic): a reader sees the whole part or none."""
    with atomic_write(path) as f:
        pq.write_table(table, f, compression="zstd")
    return Path(path)


def write_failures(directory: str | Path, failures: Sequence[tuple[str, str]]) -> Path:
    """failures.csv with columns path,reason (CSV-quoted: reasons may hold commas)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FAILURE_COLUMNS)
    w.writerows(failures)
    return write_text_atomic(Path(directory) / FAILURES, buf.getvalue())


def build_manifest(*, dataset: str, group: str, source_format: str, root: str, checkpoint: str,
                   checkpoint_sha256: str, attributes: Sequence[str],
                   thresholds: Sequence[float] | Mapping[str, float], part_files: Sequence[Path],
                   part_rows: Sequence[int], num_failures: int, complete: bool, mc_samples: int,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest; ``thresholds`` in attribute order or by name; part hashes are taken from the files on disk now."""
    if isinstance(thresholds, Mapping):
        missing = [a for a in attributes if a not in thresholds]
        if missing:
            raise ValueError(f"thresholds lack attributes {missing[:5]}")
        thresholds = [thresholds[a] for a in attributes]
    if len(thresholds) != len(attributes) or len(part_files) != len(part_rows):
        raise ValueError(f"manifest arrays disagree: {len(attributes)} attributes, {len(thresholds)} thresholds, "
                         f"{len(part_files)} part files, {len(part_rows)} row counts")
    parts = [{"file": Path(p).name, "rows": int(n), "sha256": file_sha256(p)} for p, n in zip(part_files, part_rows)]
    return {
        "format": FORMAT, "version": VERSION, "dataset": dataset, "group": group, "source_format": source_format,
        "root": root, "checkpoint": checkpoint, "checkpoint_sha256": checkpoint_sha256,
        "attributes": list(attributes), "thresholds": {a: float(t) for a, t in zip(attributes, thresholds)},
        "num_images": int(sum(part_rows)), "num_failures": int(num_failures), "complete": bool(complete),
        "mc_samples": int(mc_samples), "parts": parts, "label_rule": LABEL_RULE, **(extra or {}),
    }


def write_manifest(directory: str | Path, manifest: Mapping[str, Any]) -> Path:
    """manifest.json, atomically; write it after every part and failures.csv (its presence marks the table done)."""
    return write_text_atomic(Path(directory) / MANIFEST, json.dumps(manifest, indent=1))


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest as written, unchecked (None when there is none yet); readers want ``verify_table``."""
    path = Path(directory) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def is_annotation_dir(path: str | Path) -> bool:
    """A directory holding ``manifest.json`` is an annotation table (verified later)."""
    path = Path(path)
    return path.is_dir() and (path / MANIFEST).is_file()


def has_reliability(schema: pa.Schema, attributes: Sequence[str]) -> bool:
    """True when a part carries a reliability column for any of ``attributes``."""
    return any(reliability_column(a) in schema.names for a in attributes)


def check_manifest(manifest: Any, where: Path) -> None:
    """Format, version, required keys, completeness and one threshold per attribute; DataError naming ``where``."""
    if not isinstance(manifest, dict):
        raise DataError(f"{where}: expected a JSON object")
    if manifest.get("format", FORMAT) != FORMAT:
        raise DataError(f"{where}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("version", VERSION) not in SUPPORTED_VERSIONS:
        raise DataError(f"{where}: version {manifest.get('version')!r} is not supported (known: {SUPPORTED_VERSIONS})")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise DataError(f"{where}: missing keys {missing}")
    if manifest["complete"] is not True:
        raise DataError(f"{where.parent}: annotation is not complete (manifest says complete="
                        f"{manifest['complete']!r}): {incomplete_reason(manifest, where.parent)}")
    attributes, thresholds = list(manifest["attributes"]), manifest["thresholds"]
    if not attributes or not isinstance(thresholds, dict) or set(thresholds) != set(attributes):
        raise DataError(f"{where}: 'thresholds' must give one value per attribute in 'attributes'")


def check_part_schema(schema: pa.Schema, attributes: Sequence[str], part: Path) -> None:
    """Every manifest attribute is a floating-point column of the part."""
    absent = [a for a in attributes if a not in schema.names]
    if absent:
        raise DataError(f"{part}: attribute columns {absent[:5]} listed in the manifest are missing")
    not_float = [a for a in attributes if not pa.types.is_floating(schema.field(a).type)]
    if not_float:
        raise DataError(f"{part}: attribute columns {not_float[:5]} are not probabilities (expected float32, got "
                        f"{schema.field(not_float[0]).type})")


def verify_table(directory: str | Path, check_sha: bool = True) -> tuple[dict[str, Any], list[Path]]:
    """(manifest, part files) after checking the manifest, each part's rows, SHA-256 and columns, and no extra parts.

    Refuses (DataError naming the directory) a missing or unreadable manifest, ``complete: false``, a listed part that
    is missing or whose rows/hash differ, an unlisted ``part-*.parquet``, and attribute columns missing from a part.
    """
    directory = Path(directory)
    mfile = directory / MANIFEST
    if not mfile.is_file():
        if looks_unfinished(directory):
            raise DataError(unfinished_message(directory))
        raise DataError(f"{directory}: no {MANIFEST}; not an annotation table (annotate.py writes one per dataset "
                        "under <run>/annotations/)")
    try:
        manifest = json.loads(mfile.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{mfile}: not valid JSON ({exc})") from exc
    check_manifest(manifest, mfile)
    attributes = list(manifest["attributes"])
    files: list[Path] = []
    total = 0
    for entry in manifest["parts"]:
        part = directory / entry["file"]
        if not part.is_file():
            raise DataError(f"{directory}: part {entry['file']} listed in {MANIFEST} is missing")
        meta = pq.ParquetFile(part).metadata
        if meta.num_rows != int(entry["rows"]):
            raise DataError(f"{directory}: part {entry['file']} has {meta.num_rows} rows, manifest says "
                            f"{entry['rows']} (tampered or partially written)")
        if check_sha and "sha256" in entry and file_sha256(part) != entry["sha256"]:
            raise DataError(f"{directory}: part {entry['file']} SHA-256 does not match {MANIFEST} "
                            "(file changed after annotation)")
        check_part_schema(meta.schema.to_arrow_schema(), attributes, part)
        total += meta.num_rows
        files.append(part)
    entry = manifest.get(VALIDATION_KEY)
    if entry:
        vpath = directory / str(entry.get("file", VALIDATION_FILE))
        if not vpath.is_file():
            raise DataError(f"{directory}: {vpath.name} listed in {MANIFEST} is missing")
        if check_sha and "sha256" in entry and file_sha256(vpath) != entry["sha256"]:
            raise DataError(f"{directory}: {vpath.name} SHA-256 does not match {MANIFEST} (file changed after "
                            "annotation)")
    listed = {p.name for p in files}
    extra = sorted(p.name for p in directory.glob(PART_GLOB) if p.name not in listed)
    if extra:
        raise DataError(f"{directory}: parts {extra} are not listed in {MANIFEST} (leftover or foreign files)")
    num_images, num_failures = manifest.get("num_images"), manifest.get("num_failures", 0) or 0
    if num_images is not None and total not in (int(num_images), int(num_images) - int(num_failures)):
        raise DataError(f"{directory}: parts hold {total} rows but manifest num_images={num_images} "
                        f"(num_failures={num_failures})")
    return manifest, files


def threshold_fields(attributes: Sequence[str], counting: Sequence[float] | None,
                     counting_rule: str | None) -> dict[str, Any]:
    """Manifest entries beside ``thresholds`` (the reporting set): the counting set, its rule, and which set the labels
    use (``label_thresholds``)."""
    fields: dict[str, Any] = {"label_thresholds": COUNTING if counting is not None else REPORTING}
    if counting is not None:
        fields[COUNTING] = {a: float(t) for a, t in zip(attributes, counting)}
        fields["counting_rule"] = counting_rule
    return fields


def _threshold_set(manifest: dict[str, Any], key: str, where: Any) -> dict[str, float]:
    values = manifest.get(key)
    attributes = list(manifest["attributes"])
    if not isinstance(values, dict) or set(values) != set(attributes):
        raise DataError(f"{where}: {key!r} must give one threshold per attribute in 'attributes'")
    try:
        return {a: float(values[a]) for a in attributes}
    except (TypeError, ValueError):
        raise DataError(f"{where}: {key!r} holds a value that is not a number") from None


def label_thresholds(manifest: dict[str, Any], rule: str | None = None,
                     where: Any = "manifest.json") -> tuple[dict[str, float], str]:
    """({attribute: threshold}, key of the set used) for ``rule`` (``counting`` | ``reporting``; None = the set the
    manifest's labels use). ``counting`` on a manifest without a counting set falls back to ``thresholds``."""
    if rule is not None and rule not in LABEL_RULES:
        raise ValueError(f"label rule {rule!r} is unknown; choose one of {', '.join(LABEL_RULES)}")
    key = LABEL_RULES[rule] if rule is not None else str(manifest.get("label_thresholds", REPORTING))
    if key not in (REPORTING, COUNTING):
        raise DataError(f"{where}: label_thresholds={key!r}; expected {REPORTING!r} or {COUNTING!r}")
    if key == COUNTING and COUNTING not in manifest:
        key = REPORTING  # annotated with a checkpoint from before counting thresholds
    return _threshold_set(manifest, key, where), key
