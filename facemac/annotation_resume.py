"""What to tell someone whose annotation table is unfinished: why it is, and the command that finishes it.

Two states reach the analysis: a table whose manifest says ``complete: false`` (annotation finished, but more images
were unreadable than ``annotate.max_failure_fraction`` allows) and a folder of parts without a manifest (the run was
killed). Both are resumed the same way, into the same run folder, where finished shards are kept; the first also needs
a higher limit. Kept free of torch and Hydra so the analysis and the annotation table contract can use it.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LIMIT_KEY = "annotate.max_failure_fraction"
_STATE_DIR = ".state"
_PART_GLOB = "part-*.parquet"


def looks_unfinished(directory: Path) -> bool:
    """Parts or resume bookkeeping but no manifest: an annotation that was stopped before it finished."""
    return directory.is_dir() and not (directory / "manifest.json").is_file() and (
        (directory / _STATE_DIR).is_dir() or any(directory.glob(_PART_GLOB)))


def _run_dir(table_dir: Path) -> Path:
    """``<run>/annotations/<dataset>`` → ``<run>`` (the folder ``hydra.run.dir`` names)."""
    table_dir = table_dir.resolve()
    return table_dir.parent.parent if table_dir.parent.name == "annotations" else table_dir.parent


def _recorded_overrides(run_dir: Path) -> list[str] | None:
    """The command-line overrides Hydra recorded for that run (``.hydra/overrides.yaml``), if it has them."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError):
        return None
    return [str(v) for v in values] if isinstance(values, list) else None


def resume_command(table_dir: Path, extra: list[str] | None = None) -> str:
    """The command that continues the annotate run holding ``table_dir``, with ``extra`` overrides."""
    run_dir = _run_dir(table_dir)
    extra = list(extra or [])
    if (run_dir.parent / "pipeline.json").is_file():  # a pipeline's annotate stage: resume the pipeline
        return f"re-run the pipeline with --dir {shlex.quote(str(run_dir.parent))} {' '.join(extra)}".rstrip()
    keys = {o.split("=", 1)[0] for o in extra} | {"hydra.run.dir"}
    recorded = _recorded_overrides(run_dir)
    kept = [o for o in recorded if o.split("=", 1)[0].lstrip("+~") not in keys] if recorded is not None else None
    args = [*(kept if kept is not None else ["<the same overrides>"]), f"hydra.run.dir={run_dir}", *extra]
    return "python annotate.py " + " ".join(a if a.startswith("<") else shlex.quote(a) for a in args)


def suggested_limit(failures: int, listed: int) -> float:
    """The smallest two-decimal ``annotate.max_failure_fraction`` that accepts ``failures`` of ``listed`` images."""
    limit = math.ceil(failures / listed * 100) / 100 if listed else 1.0
    return limit if failures <= limit * listed else round(limit + 0.01, 2)


def incomplete_reason(manifest: Mapping[str, Any], table_dir: Path) -> str:
    """Why a manifest says ``complete: false`` and how to finish it (the one cause annotation writes it for)."""
    failures = int(manifest.get("num_failures") or 0)
    listed = int(manifest.get("num_listed") or (int(manifest.get("num_images") or 0) + failures))
    limit = manifest.get("max_failure_fraction")
    share = failures / listed if listed else float("nan")
    what = "unreadable or without a face" if manifest.get("geometry") == "detect" else "unreadable"
    cause = (f"{failures} of {listed} images ({share:.1%}) are {what}, more than {LIMIT_KEY}"
             + (f"={limit}" if limit is not None else "") + f" allows (listed in {table_dir / 'failures.csv'})")
    fix = resume_command(table_dir, [f"{LIMIT_KEY}={suggested_limit(failures, listed)}"])
    return (f"{cause}; if losing them is acceptable, resume the run with a higher limit (finished shards are kept, "
            f"nothing is re-annotated): {fix}")


def unfinished_message(table_dir: Path) -> str:
    """A killed annotation's folder: parts without a manifest."""
    parts = len(list(table_dir.glob(_PART_GLOB)))
    return (f"{table_dir}: annotation did not finish ({parts} part file(s), no manifest.json: the run was stopped); "
            f"resume it into the same folder: {resume_command(table_dir)}")
