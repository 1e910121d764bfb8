"""The simulated person: fill an audit template from ground truth (the demo targets' ``labels.csv``, or any label CSV
``path, [identity], <attributes as 1/0 or ±1>``), as a person with the labelling page would.

It judges every attribute of every face unless told otherwise: ``attributes`` (only these), ``blank`` (a share of the
cells left not judged, drawn with ``seed``). Faces or cells the truth does not know (absent rows, empty or -1 cells of a
label CSV with unknowns) stay blank, never negative. Tests and ``experiment=demo`` use it instead of a person.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.audit.format import PATH, RESERVED, csv_name, write_filled
from facemac.errors import DataError

log = logging.getLogger(__name__)


def read_truth(path: str | Path) -> pd.DataFrame:
    """A label CSV indexed by path, cells as strings '1' / '0' / '' (1/0 and ±1 codings; -1 means negative)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such label file (expected a CSV 'path, identity, <attributes as 0/1>')")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if PATH not in frame.columns:
        raise DataError(f"{path}: no 'path' column (header: {', '.join(frame.columns)})")
    frame[PATH] = frame[PATH].str.strip().str.replace("\\", "/", regex=False)
    cols = [c for c in frame.columns if c not in RESERVED and c != "split"]
    coded = frame[cols].apply(lambda c: c.str.strip()).replace({"1.0": "1", "0.0": "0", "+1": "1", "-1.0": "-1"})
    bad = ~coded.isin(["1", "0", "-1", ""])
    if bad.any().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}, line {r + 2}, column {cols[c]!r}: {coded.iat[r, c]!r} is not a 0/1 label")
    minus = (coded == "-1").any().any()
    zero = (coded == "0").any().any()
    # a 1/0 file with -1 for unknown (labelcsv's rule) vs a ±1 file: -1 is a negative only where 0 never appears
    coded = coded.replace({"-1": "0" if minus and not zero else ""})
    coded.index = frame[PATH]
    if coded.index.duplicated().any():
        raise DataError(f"{path}: path {coded.index[coded.index.duplicated()][0]!r} appears twice")
    return coded


def simulate_fill(template: str | Path, truth: str | Path | pd.DataFrame, out: str | Path | None = None,
                  attributes: Collection[str] | None = None, blank: float = 0.0, seed: int = 0) -> Path:
    """Fill ``template`` (an audit CSV) from ``truth``; written to ``out`` (default: over the template)."""
    template = Path(template)
    frame = pd.read_csv(template, dtype=str, keep_default_na=False)
    labels = truth if isinstance(truth, pd.DataFrame) else read_truth(truth)
    attr_cols = [c for c in frame.columns if c not in RESERVED]
    judge = [a for a in attr_cols if (attributes is None or a in attributes) and a in labels.columns]
    if not judge:
        raise DataError(f"{template}: the truth knows none of its attributes ({', '.join(attr_cols[:5])}, …)")
    known = frame[PATH].isin(labels.index)
    if not known.all():
        log.warning("%s: %d of %d audited faces have no truth; left blank", template, int((~known).sum()), len(frame))
    values = labels.reindex(frame[PATH])[judge].fillna("").to_numpy(dtype=object)
    if blank > 0:
        rng = np.random.default_rng(seed)
        values[rng.random(values.shape) < blank] = ""
    frame[judge] = values
    return write_filled(Path(out) if out is not None else template, frame)


def simulate_audits(annotations_dir: str | Path, out_dir: str | Path, size: int, seed: int,
                    truth: Mapping[str, str | Path], rare: int = 4) -> dict[str, Path]:
    """For each dataset in ``truth`` ({dataset: label CSV}): draw its audit sample from
    ``<annotations_dir>/<dataset>/`` and fill it from the truth: ``<out_dir>/<dataset>.csv`` + sidecar. Returns
    {dataset: csv}; what ``analyze.audit=<out_dir>`` reads."""
    from facemac.audit.sample import draw_sample, read_rows, write_sample

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for dataset, labels in truth.items():
        table = Path(annotations_dir) / dataset
        sample = draw_sample(read_rows(table), size, seed=seed, rare=rare)
        path = write_sample(sample, out_dir)
        simulate_fill(path, labels)
        written[dataset] = path
        log.info("simulated audit of %s: %d faces judged from %s → %s", dataset, len(sample.paths), labels, path)
    return written


__all__ = ["read_truth", "simulate_fill", "simulate_audits", "csv_name"]
