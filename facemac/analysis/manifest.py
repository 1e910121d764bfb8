"""Checks an annotation directory against its manifest before any number is computed from it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from facemac.errors import DataError

FORMAT = "facemac-annotations"
SUPPORTED_VERSIONS = (1,)
REQUIRED_KEYS = ("dataset", "group", "attributes", "thresholds", "parts", "complete")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_annotation_dir(path: Path) -> bool:
    """A directory holding ``manifest.json`` is an annotation table (verified later)."""
    return path.is_dir() and (path / "manifest.json").is_file()


def load_verified_manifest(directory: Path, check_sha: bool = True) -> tuple[dict[str, Any], list[Path]]:
    """(manifest, part files) after checking completeness, part row counts and SHA-256 against the manifest.

    Refuses (DataError naming the directory) a missing or unreadable manifest, ``complete: false``, a listed part that
    is missing or whose rows/hash differ, an unlisted ``part-*.parquet``, and attribute columns missing from a part.
    """
    directory = Path(directory)
    mfile = directory / "manifest.json"
    if not mfile.is_file():
        raise DataError(f"{directory}: no manifest.json; not a finished annotation table (re-run annotate.py)")
    try:
        manifest = json.loads(mfile.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{mfile}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise DataError(f"{mfile}: expected a JSON object")
    if manifest.get("format", FORMAT) != FORMAT:
        raise DataError(f"{mfile}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("version", 1) not in SUPPORTED_VERSIONS:
        raise DataError(f"{mfile}: version {manifest.get('version')!r} is not supported (known: {SUPPORTED_VERSIONS})")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise DataError(f"{mfile}: missing keys {missing}")
    if manifest["complete"] is not True:
        raise DataError(f"{directory}: annotation is not complete (manifest says complete={manifest['complete']!r}); "
                        "finish or resume the annotate run first")
    attributes = list(manifest["attributes"])
    thresholds = manifest["thresholds"]
    if not attributes or not isinstance(thresholds, dict) or set(thresholds) != set(attributes):
        raise DataError(f"{mfile}: 'thresholds' must give one value per attribute in 'attributes'")
    files: list[Path] = []
    total = 0
    for entry in manifest["parts"]:
        part = directory / entry["file"]
        if not part.is_file():
            raise DataError(f"{directory}: part {entry['file']} listed in manifest.json is missing")
        meta = pq.ParquetFile(part).metadata
        if meta.num_rows != int(entry["rows"]):
            raise DataError(f"{directory}: part {entry['file']} has {meta.num_rows} rows, manifest says "
                            f"{entry['rows']} (tampered or partially written)")
        if check_sha and "sha256" in entry and sha256_file(part) != entry["sha256"]:
            raise DataError(f"{directory}: part {entry['file']} SHA-256 does not match manifest.json "
                            "(file changed after annotation)")
        names = set(meta.schema.to_arrow_schema().names)
        absent = [a for a in attributes if a not in names]
        if absent:
            raise DataError(f"{part}: attribute columns {absent[:5]} listed in the manifest are missing")
        total += meta.num_rows
        files.append(part)
    listed = {p.name for p in files}
    extra = sorted(p.name for p in directory.glob("part-*.parquet") if p.name not in listed)
    if extra:
        raise DataError(f"{directory}: parts {extra} are not listed in manifest.json (leftover or foreign files)")
    num_images, num_failures = manifest.get("num_images"), manifest.get("num_failures", 0) or 0
    if num_images is not None and total not in (int(num_images), int(num_images) - int(num_failures)):
        raise DataError(f"{directory}: parts hold {total} rows but manifest num_images={num_images} "
                        f"(num_failures={num_failures})")
    return manifest, files
