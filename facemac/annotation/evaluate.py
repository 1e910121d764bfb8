"""Accuracy of an annotation table against ground truth (the demo targets' labels.csv): checks the whole stage.

    python -m facemac.annotation.evaluate <annotate run folder or its annotations/ folder> [--min 0.93]
        [--label-rule counting|reporting]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.annotation_table import MANIFEST, is_annotation_dir, read_manifest
from facemac.errors import DataError
from facemac.annotation_table import LABEL_RULES, label_thresholds


def read_annotations(ann_dir: str | Path) -> pd.DataFrame:
    """All part files of one dataset's annotation directory, in part order."""
    ann_dir = Path(ann_dir)
    manifest = read_manifest(ann_dir)
    if manifest is None:
        raise DataError(f"{ann_dir} has no {MANIFEST} (not an annotation directory, or the run is unfinished)")
    frames = [pd.read_parquet(ann_dir / p["file"]) for p in manifest["parts"]]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def evaluate_dataset(ann_dir: str | Path, labels_csv: str | Path | None = None,
                     label_rule: str | None = None) -> pd.DataFrame:
    """Per-attribute accuracy of thresholded probabilities vs 0/1 ground truth, joined on ``path``.

    The thresholds are the set the manifest's labels use (``label_rule`` None), or ``counting`` / ``reporting``.
    Only attributes present in both the checkpoint and labels.csv are scored. Returns columns
    dataset, attribute, n, accuracy, true_rate, predicted_rate.
    """
    ann_dir = Path(ann_dir)
    manifest = read_manifest(ann_dir)
    thresholds, _ = label_thresholds(manifest, label_rule, ann_dir / "manifest.json")
    labels_csv = Path(labels_csv) if labels_csv else Path(manifest["root"]) / "labels.csv"
    if not labels_csv.is_file():
        raise DataError(f"{labels_csv}: no ground-truth labels.csv for {manifest['dataset']}")
    truth = pd.read_csv(labels_csv, dtype={"path": str})
    pred = read_annotations(ann_dir)
    joined = pred.merge(truth, on="path", how="inner", suffixes=("", "_true"))
    if len(joined) == 0:
        raise DataError(f"no path of {ann_dir} matches a path in {labels_csv}")
    rows = []
    for attr in manifest["attributes"]:
        if attr not in truth.columns:
            continue
        true_col = f"{attr}_true" if f"{attr}_true" in joined.columns else attr
        y = joined[true_col].to_numpy(dtype=np.float64) > 0.5
        yhat = joined[attr].to_numpy(dtype=np.float64) > thresholds[attr]
        rows.append({"dataset": manifest["dataset"], "attribute": attr, "n": len(joined),
                     "accuracy": float((y == yhat).mean()), "true_rate": float(y.mean()),
                     "predicted_rate": float(yhat.mean())})
    if not rows:
        raise DataError(f"{labels_csv} shares no attribute column with {ann_dir / MANIFEST}")
    return pd.DataFrame(rows)


def evaluate_run(folder: str | Path, label_rule: str | None = None) -> pd.DataFrame:
    """Every dataset under ``<run>/annotations`` (or the annotations folder itself) that has a labels.csv."""
    folder = Path(folder)
    base = folder / "annotations" if (folder / "annotations").is_dir() else folder
    frames = []
    for d in sorted(p for p in base.iterdir() if is_annotation_dir(p)):
        root = Path(read_manifest(d)["root"])
        if (root / "labels.csv").is_file():
            frames.append(evaluate_dataset(d, label_rule=label_rule))
    if not frames:
        raise DataError(f"no annotated dataset with a ground-truth labels.csv under {base}")
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    """Exit 0, 1 when ``--min`` is not met, 2 with one ``error:`` line for a folder it cannot evaluate."""
    from facemac.cli.errors import drop_common_flags
    from facemac.stage import report_errors

    argv = drop_common_flags(sys.argv[1:] if argv is None else list(argv), "evaluate")
    with report_errors():
        return _main(argv)


def _main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--min", type=float, default=None, help="fail (exit 1) if a dataset's mean accuracy is below")
    ap.add_argument("--label-rule", choices=sorted(LABEL_RULES), default=None,
                    help="threshold set to score (default: the one the manifest's labels use)")
    args = ap.parse_args(argv)
    frame = evaluate_run(args.folder, args.label_rule)
    per_target = frame.groupby("dataset")["accuracy"].mean()
    with pd.option_context("display.max_rows", 500, "display.width", 160):
        print(frame.to_string(index=False))
        print("\nmean per-attribute accuracy per dataset:")
        print(per_target.to_string())
    if args.min is not None and (per_target < args.min).any():
        print(f"FAIL: below {args.min}: {per_target[per_target < args.min].to_dict()}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
