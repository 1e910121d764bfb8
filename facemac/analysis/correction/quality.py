"""The MAC's quality per attribute, for the report to put next to every conclusion: balanced accuracy of the labels
the analysis counts, on the checkpoint's validation split (validation.parquet beside the annotation) and on a
dataset's audit (design-weighted), so a reader sees when a "driver" is an attribute the MAC classifies at chance."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facemac.analysis.correction.audit import AuditRows

CHANCE = 0.6  # balanced accuracy at or below this: the attribute is classified at (about) chance


@dataclass
class MacQuality:
    """Balanced accuracy per attribute: ``validation`` (one MAC, so one dict) and ``audit`` per audited dataset."""

    validation: dict[str, float] = field(default_factory=dict)
    audit: dict[str, dict[str, float]] = field(default_factory=dict)
    validation_source: str = ""

    def at_chance(self, attribute: str, datasets: list[str] = ()) -> list[str]:
        """Where ``attribute`` is classified at chance: 'validation' and/or the audited datasets."""
        out = []
        v = self.validation.get(attribute)
        if v is not None and np.isfinite(v) and v <= CHANCE:
            out.append(f"validation {v:.2f}")
        for d in datasets:
            a = self.audit.get(d, {}).get(attribute)
            if a is not None and np.isfinite(a) and a <= CHANCE:
                out.append(f"audit of {d} {a:.2f}")
        return out


def balanced_accuracy(pred: np.ndarray, truth: np.ndarray, known: np.ndarray, weight: np.ndarray | None = None
                      ) -> np.ndarray:
    """(TPR + TNR) / 2 per column of 0/1 arrays [n, A] over the ``known`` cells, optionally weighted; NaN where a
    class is absent."""
    w = np.ones(pred.shape[0]) if weight is None else weight
    w = w[:, None] * known
    pos, neg = w * (truth == 1), w * (truth == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = (pos * (pred == 1)).sum(0) / pos.sum(0)
        tnr = (neg * (pred == 0)).sum(0) / neg.sum(0)
    return (tpr + tnr) / 2.0


def validation_quality(vs) -> dict[str, float]:
    """From a ValidationSet (correction/validation.py): labels as counted (probability > the table's thresholds)."""
    pred = (vs.probs > vs.thresholds[None, :]).astype(np.int8)
    ba = balanced_accuracy(pred, vs.labels, vs.labels >= 0)
    return {a: float(x) for a, x in zip(vs.attributes, ba)}


def audit_quality(rows: AuditRows, attributes: list[str]) -> dict[str, float]:
    """On an audit: each judged face weighs as the faces of the dataset it stands for (W_h / judged in its stratum,
    or the sampler weight), so a stratified sample that over-draws rare labels is not over-counted."""
    w = np.ones(rows.size) if rows.weights is None else rows.weights.copy()
    if rows.weights is None and len(rows.stratum_weight) > 1:
        size = np.bincount(rows.stratum, minlength=len(rows.stratum_weight)).astype(float)
        w = rows.stratum_weight[rows.stratum] / np.maximum(size[rows.stratum], 1)
    mac = (rows.mac > 0.5).astype(np.int8)
    ba = balanced_accuracy(mac, rows.truth.astype(np.int8), rows.judged, w)
    return {a: float(x) for a, x in zip(attributes, ba)}


def mac_quality(datasets, corrections, attributes: list[str], label_rule: str) -> MacQuality:
    """Validation balanced accuracy of the one MAC (from the first annotated input carrying validation predictions)
    and audit balanced accuracy per audited dataset."""
    from facemac.analysis.correction.engine import AuditCorrection, ValidationCorrection
    from facemac.analysis.correction.validation import load_validation
    from facemac.annotation_table import read_manifest

    q = MacQuality()
    for d, c in zip(datasets, corrections):
        if isinstance(c, AuditCorrection):
            q.audit[d.name] = audit_quality(c.rows, attributes)
        if not q.validation and d.is_prediction:
            vs = c.vs if isinstance(c, ValidationCorrection) else load_validation(d.path, label_rule)
            if vs is not None:
                q.validation = validation_quality(vs.select(attributes) if vs.attributes != attributes else vs)
                q.validation_source = vs.source
            else:  # an older table: the checkpoint's validation metrics from the manifest (reporting thresholds)
                m = read_manifest(d.path) or {}
                per = m.get("mac_validation_metrics") or {}
                q.validation = {a: float(per[a]["balanced_accuracy"]) for a in attributes
                                if a in per and "balanced_accuracy" in per[a]}
                q.validation_source = f"{d.path / 'manifest.json'} (checkpoint metrics)" if q.validation else ""
    return q
