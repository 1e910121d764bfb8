"""The comparison tables, from the files each stage writes (pure pandas, no plotting)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from facemac.compare.labels import NOISE_KEYS as _NOISE_KEYS
from facemac.compare.labels import NOISE_PREFIXES as _NOISE_PREFIXES
from facemac.compare.labels import flatten
from facemac.compare.runs import Run

POOLED = "(pooled)"


def differing_config(runs: list[Run]) -> pd.DataFrame:
    """One row per run, one column per config key whose value is not the same in every run."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f if not k.startswith(_NOISE_PREFIXES) and k not in _NOISE_KEYS})
    differ = [k for k in keys if len({f.get(k, "<unset>") for f in flat}) > 1]
    return pd.DataFrame([{k: f.get(k, "<unset>") for k in differ} for f in flat], index=[r.label for r in runs])


@dataclass
class TrainComparison:
    summary: pd.DataFrame  # one row per run: val/test mA and mean accuracy, best epoch, differing config
    per_attribute: pd.DataFrame  # long: run, attribute, accuracy, balanced_accuracy, f1, auroc, threshold
    config_keys: list[str] = field(default_factory=list)

    def balanced_accuracy(self) -> pd.DataFrame:
        """attribute × run, test balanced accuracy (in the first run's attribute order)."""
        wide = self.per_attribute.pivot(index="attribute", columns="run", values="balanced_accuracy")
        order = list(dict.fromkeys(self.per_attribute["attribute"]))
        return wide.loc[order, list(dict.fromkeys(self.per_attribute["run"]))]


def compare_train(runs: list[Run]) -> TrainComparison:
    rows, per_attr = [], []
    for r in runs:
        m = json.loads((r.path / "metrics.json").read_text())
        val, test = m.get("val") or {}, m.get("test") or {}
        rows.append({"run": r.label, "val_mA": val.get("mA"), "val_mean_accuracy": val.get("mean_accuracy"),
                     "test_mA": test.get("mA"), "test_mean_accuracy": test.get("mean_accuracy"),
                     "best_epoch": val.get("epoch")})
        for attr, row in (test.get("per_attribute") or {}).items():
            per_attr.append({"run": r.label, "attribute": attr, **row})
    config = differing_config(runs)
    summary = pd.DataFrame(rows).set_index("run").join(config)
    columns = ["run", "attribute", "accuracy", "balanced_accuracy", "f1", "auroc", "threshold"]
    return TrainComparison(summary=summary, per_attribute=pd.DataFrame(per_attr, columns=columns),
                           config_keys=list(config.columns))


def compare_annotate(runs: list[Run]) -> pd.DataFrame:
    """One row per (run, dataset): images, failures, throughput, and the checkpoint it was annotated with."""
    frames = []
    for r in runs:
        s = pd.read_csv(r.path / "annotation_summary.csv")
        keep = [c for c in ("dataset", "group", "images", "failures", "images_per_s") if c in s.columns]
        s = s[keep].copy()
        shas = []
        for d in s["dataset"]:
            mf = r.path / "annotations" / str(d) / "manifest.json"
            shas.append(json.loads(mf.read_text()).get("checkpoint_sha256", "")[:12] if mf.is_file() else "")
        s.insert(0, "run", r.label)
        s["checkpoint_sha256"] = shas
        frames.append(s)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass
class AnalysisComparison:
    pairs: pd.DataFrame  # (p, q) × per-run kl_mean / kl_sum / kl_joint / coverage
    differences: pd.DataFrame  # long: run, baseline, p, q, attribute, kl_baseline, kl, delta, ci overlap
    summary: pd.DataFrame  # one row per run
    no_overlap: list[str] = field(default_factory=list)  # runs sharing no dataset pair with the baseline


def _pairs_side_by_side(runs: list[Run], tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    metrics = ["kl_mean", "kl_mean_ci_low", "kl_mean_ci_high", "kl_sum", "kl_joint", "coverage"]
    frames = []
    for r in runs:
        t = tables[r.label]
        cols = [c for c in metrics if c in t.columns]
        frames.append(t.set_index(["p", "q"])[cols].rename(columns=lambda c, lab=r.label: f"{lab}: {c}"))
    return pd.concat(frames, axis=1, join="outer")


def _overlap(a_low, a_high, b_low, b_high) -> np.ndarray:
    """True where two intervals overlap; NaN where either is missing."""
    known = ~(np.isnan(a_low) | np.isnan(a_high) | np.isnan(b_low) | np.isnan(b_high))
    result = (a_low <= b_high) & (b_low <= a_high)
    return np.array([bool(r) if k else None for r, k in zip(result, known)], dtype=object)


def compare_analyze(runs: list[Run], baseline: Run) -> AnalysisComparison:
    pairs = {r.label: pd.read_csv(r.path / "kl_pairs.csv") for r in runs}
    attrs = {r.label: pd.read_csv(r.path / "kl_attributes.csv") for r in runs}
    base = attrs[baseline.label]
    diffs, no_overlap = [], []
    for r in runs:
        if r is baseline:
            continue
        m = base.merge(attrs[r.label], on=["p", "q", "attribute"], suffixes=("_baseline", ""))
        if m.empty:
            no_overlap.append(r.label)
            continue
        out = pd.DataFrame({"run": r.label, "baseline": baseline.label, "p": m["p"], "q": m["q"],
                            "attribute": m["attribute"], "kl_baseline": m["kl_baseline"], "kl": m["kl"],
                            "delta": m["kl"] - m["kl_baseline"]})
        if {"ci_low", "ci_high", "ci_low_baseline", "ci_high_baseline"} <= set(m.columns):
            out["intervals_overlap"] = _overlap(*(m[c].to_numpy(float) for c in
                                                  ("ci_low_baseline", "ci_high_baseline", "ci_low", "ci_high")))
        diffs.append(out)
    summary = []
    for r in runs:
        t = pairs[r.label]
        row: dict[str, Any] = {"run": r.label, "datasets": len(set(t["p"]) | set(t["q"]))}
        for p, q in (("real", "synthetic"), ("synthetic", "real")):
            hit = t[(t["p"] == f"{p}{POOLED}") & (t["q"] == f"{q}{POOLED}")]
            if len(hit):
                row[f"kl_mean {p}{POOLED}||{q}{POOLED}"] = float(hit["kl_mean"].iloc[0])
        summary.append(row)
    return AnalysisComparison(pairs=_pairs_side_by_side(runs, pairs),
                              differences=pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame(),
                              summary=pd.DataFrame(summary).set_index("run").join(differing_config(runs)),
                              no_overlap=no_overlap)


def plotted_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Ordered pairs worth a column: datasets against datasets and pooled against pooled (a pooled group against
    one of its own members says little); pooled pairs first."""
    keep = [(p, q) for p, q in pairs if p.endswith(POOLED) == q.endswith(POOLED)]
    return sorted(keep, key=lambda pq: (not pq[0].endswith(POOLED), pq))
