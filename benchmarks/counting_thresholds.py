"""Which counting rule keeps the analysis honest? Compare counting estimators on a finished demo pipeline run.

Every candidate sees the same weights and the same stored probabilities; only the way probabilities become counts of
positives differs. For each rule the script prints, against the demo targets' ground truth (labels.csv):

* cells: the share of real x synthetic x attribute KL cells (both directions) whose KL from the MAC's counts lies within
  max(0.02 nats, 25 %) of the KL of the true labels (alpha = 0.5, as the analysis), with mean and max abs error;
* direction: real/synthetic pairs whose asymmetry (sum KL(real||synth) vs sum KL(synth||real)) has the true sign;
* accuracy: mean per-attribute accuracy per target (threshold rules only), as `python -m facemac.annotation.evaluate`.

    python benchmarks/counting_thresholds.py <pipeline run folder> [--val-cache val.npz] [--json out.json]

The validation predictions (the split every rule is tuned on) are computed once from ``train/checkpoints/best.pt``
and cached with ``--val-cache``; re-running the script then costs seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.analysis.divergence import attribute_kl
from facemac.annotation.evaluate import read_annotations
from facemac.annotation_table import read_manifest
from facemac.training.counting import counting_thresholds
from facemac.training.thresholds import tune_thresholds

ALPHA = 0.5
TOL_ABS, TOL_REL = 0.02, 0.25


def val_predictions(run: Path, cache: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(probs, labels, mask, attributes) of the training run's validation split under its best checkpoint."""
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return z["probs"], z["labels"], z["mask"], [str(a) for a in z["attributes"]]
    import torch
    from omegaconf import OmegaConf

    from facemac.annotation.inference import Annotator
    from facemac.data.dataset import FaceDataset, collate_faces
    from facemac.data.registry import build_table

    cfg = OmegaConf.load(run / "train" / ".hydra" / "config.yaml")
    table = build_table(cfg.dataset, cfg.paths.cache_dir, demo_params=cfg.get("demo")).split("val")
    ann = Annotator.from_checkpoint(run / "train" / "checkpoints" / "best.pt", torch.device("cpu"), amp="off")
    loader = torch.utils.data.DataLoader(FaceDataset(table, ann.preprocessor), batch_size=256,
                                         collate_fn=collate_faces)
    probs, labels, mask = [], [], []
    for batch in loader:
        probs.append(ann.predict(batch["image"])[0].numpy())
        labels.append(batch["labels"].numpy())
        mask.append(batch["mask"].numpy().astype(bool))
    probs, labels, mask, attrs = np.concatenate(probs), np.concatenate(labels), np.concatenate(mask), ann.attributes
    if cache is not None:
        np.savez(cache, probs=probs, labels=labels, mask=mask, attributes=np.array(attrs))
    return probs, labels, mask, attrs


def target_predictions(run: Path, attributes: list[str]) -> dict[str, dict]:
    """Per demo target: group, stored probabilities and the true labels, joined on path."""
    out = {}
    for d in sorted((run / "annotate" / "annotations").iterdir()):
        manifest = read_manifest(d)
        if manifest is None:
            continue
        truth = pd.read_csv(Path(manifest["root"]) / "labels.csv", dtype={"path": str})
        joined = read_annotations(d).merge(truth, on="path", suffixes=("", "_true"))
        out[manifest["dataset"]] = {
            "group": manifest["group"],
            "probs": joined[attributes].to_numpy(np.float64),
            "truth": joined[[f"{a}_true" for a in attributes]].to_numpy(np.float64) > 0.5,
        }
    return out


def confusion(probs: np.ndarray, labels: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validation true- and false-positive rates per attribute for ``prob > thr``."""
    pred, y = probs > thr, labels > 0.5
    tpr = (pred & y).sum(0) / np.maximum(y.sum(0), 1)
    fpr = (pred & ~y).sum(0) / np.maximum((~y).sum(0), 1)
    return tpr, fpr


def estimators(vp: np.ndarray, vy: np.ndarray, vm: np.ndarray) -> dict[str, dict]:
    """name -> {thresholds} (classify and count) or {adjust: (thresholds, tpr, fpr)} or {soft: True}."""
    rules: dict[str, dict] = {}
    for rule in ("balanced_accuracy", "accuracy", "rate_match"):
        rules[rule] = {"thr": np.array(counting_thresholds(vp, vy, vm, rule))}
    rules["f1"] = {"thr": np.array(tune_thresholds(vp, vy, vm, "f1"))}
    rules["fixed_0.5"] = {"thr": np.full(vp.shape[1], 0.5)}
    for base in ("balanced_accuracy", "accuracy"):
        thr = rules[base]["thr"]
        rules[f"acc_adjusted({base})"] = {"thr": thr, "adjust": confusion(vp, vy, thr)}
    rules["soft(mean probability)"] = {"soft": True}
    return rules


def positives(est: dict, probs: np.ndarray) -> np.ndarray:
    """Estimated positives per attribute for one target."""
    n = len(probs)
    if est.get("soft"):
        return probs.sum(0)
    pos = (probs > est["thr"]).sum(0).astype(np.float64)
    if "adjust" in est:
        tpr, fpr = est["adjust"]
        rate = np.clip((pos / n - fpr) / np.maximum(tpr - fpr, 1e-6), 0.0, 1.0)
        pos = rate * n
    return pos


def score(est: dict, targets: dict[str, dict]) -> dict:
    """Cells within tolerance, errors, asymmetry directions and per-target accuracy of one estimator."""
    names = list(targets)
    real = [t for t in names if targets[t]["group"] == "real"]
    synth = [t for t in names if targets[t]["group"] == "synthetic"]
    pos = {t: positives(est, targets[t]["probs"]) for t in names}
    true = {t: targets[t]["truth"].sum(0).astype(np.float64) for t in names}
    n = {t: float(len(targets[t]["probs"])) for t in names}
    errs, within, directions = [], [], []
    for r in real:
        for s in synth:
            sums = {}
            for p, q in ((r, s), (s, r)):
                kl_mac = attribute_kl(pos[p], n[p], pos[q], n[q], ALPHA)
                kl_true = attribute_kl(true[p], n[p], true[q], n[q], ALPHA)
                err = np.abs(kl_mac - kl_true)
                errs.append(err)
                within.append(err <= np.maximum(TOL_ABS, TOL_REL * kl_true))
                sums[(p, q)] = (kl_mac.sum(), kl_true.sum())
            mac_dir = sums[(r, s)][0] > sums[(s, r)][0]
            true_dir = sums[(r, s)][1] > sums[(s, r)][1]
            directions.append(mac_dir == true_dir)
    err = np.concatenate(errs)
    out = {"cells_within": float(np.concatenate(within).mean()), "cells": int(err.size),
           "mae": float(err.mean()), "max_err": float(err.max()),
           "directions_right": f"{sum(directions)}/{len(directions)}"}
    if "thr" in est and "adjust" not in est:
        out["accuracy"] = {t: float(((targets[t]["probs"] > est["thr"]) == targets[t]["truth"]).mean()) for t in names}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a demo pipeline folder holding train/ and annotate/")
    ap.add_argument("--val-cache", type=Path, default=None, help="npz to store/reuse the validation predictions")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here as well")
    args = ap.parse_args(argv)
    vp, vy, vm, attrs = val_predictions(args.run, args.val_cache)
    targets = target_predictions(args.run, attrs)
    results = {name: score(est, targets) for name, est in estimators(vp, vy, vm).items()}
    rows = []
    for name, r in results.items():
        acc = r.get("accuracy", {})
        rows.append({"rule": name, "cells within": f"{100 * r['cells_within']:.1f} %", "MAE": f"{r['mae']:.4f}",
                     "max": f"{r['max_err']:.3f}", "directions": r["directions_right"],
                     "accuracy per target": " / ".join(f"{acc[t]:.4f}" for t in targets) if acc else "-"})
    print(f"{len(targets)} targets ({', '.join(targets)}), {results[next(iter(results))]['cells']} KL cells, "
          f"tolerance max({TOL_ABS} nats, {TOL_REL:.0%}), alpha {ALPHA}")
    print(pd.DataFrame(rows).to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
