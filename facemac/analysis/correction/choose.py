"""Which correction each dataset gets (``analyze.correction``) and the audits it reads (``analyze.audit``)."""

from __future__ import annotations

import logging

import numpy as np

from facemac.analysis.correction.audit import audit_sources, check_audit_targets, load_audit
from facemac.analysis.correction.engine import AuditCorrection, Correction, validation_correction
from facemac.errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("auto", "audit", "validation", "none")  # analyze.correction; its schema (settings/analyze.py) refuses others


def build_corrections(datasets, attributes: list[str], mode: str, audit_spec, soft: bool,
                      min_reliability: float | None, power_tuning: bool = True) -> list[Correction | None]:
    """One correction (or None: counted) per input, in input order. Every audit is read and checked before anything
    is counted, so a bad audit costs one error line and nothing else. The validation corrections need the counts:
    ``add_validation`` fills them in afterwards."""
    names = [d.name for d in datasets]
    sources = audit_sources(audit_spec, names)
    check_audit_targets(sources, datasets)
    if sources and mode in ("validation", "none"):
        raise ConfigError(f"analyze.audit is set but analyze.correction={mode}: the audits would be ignored; use "
                          "analyze.correction=auto (or audit), or drop analyze.audit")
    out: list[Correction | None] = []
    for d in datasets:
        corr: Correction | None = None
        if d.name in sources and mode in ("auto", "audit"):
            thr = np.array([d.thresholds.get(a, 0.5) for a in attributes], np.float64)
            rows = load_audit(sources[d.name], d.name, d.attributes, attributes, d.files, thr, soft,
                              min_reliability, d.details.get("num_images"))
            corr = AuditCorrection(rows, tune=power_tuning)
            log.info("%s: audit %s, %d faces, %d judgements (%s design)", d.name, rows.source, rows.size,
                     int(rows.judged.sum()), rows.design)
        out.append(corr)
    return out


def wants_validation(d, correction, mode: str) -> bool:
    """Whether counting ``d`` should stream the row sums the no-audit correction needs (it can apply there)."""
    from facemac.annotation_table import VALIDATION_FILE

    return (correction is None and d.is_prediction and mode in ("auto", "validation")
            and (d.path / VALIDATION_FILE).is_file())


def add_validation(corrections: list[Correction | None], datasets, counts, attributes: list[str], mode: str,
                   label_rule: str, soft: bool, seed: int = 0) -> list[Correction | None]:
    """Annotated inputs without an audit get the checkpoint's validation correction (``auto``/``validation``) when
    their table carries validation predictions; older tables stay counted (one warning from load_validation)."""
    if mode not in ("auto", "validation") or soft:
        if soft and mode == "validation":
            raise ConfigError("analyze.correction=validation corrects hard labels; with analyze.mode=soft use "
                              "an audit or analyze.correction=none")
        return corrections
    out = list(corrections)
    for i, (d, c) in enumerate(zip(datasets, counts)):
        if out[i] is None and d.is_prediction:
            out[i] = validation_correction(d, attributes, c, label_rule, seed)
    return out


def describe_corrections(datasets, corrections, pooled: dict, mode: str) -> dict[str, tuple[str, str]]:
    """dataset -> (correction, what it assumes), for the report and the recorded settings."""
    out = {}
    for d, c in zip(datasets, corrections):
        if c is not None:
            out[d.name] = (c.name, c.assumption(d.name))
        elif not d.is_prediction:
            out[d.name] = ("none", "ground-truth labels (no MAC involved)")
        elif mode == "none":
            out[d.name] = ("none", "the MAC's counts (analyze.correction=none): assumes the MAC never errs")
        else:
            out[d.name] = ("none", "the MAC's counts: no audit, and the annotation carries no validation "
                                   "predictions (an older checkpoint); assumes the MAC never errs")
    return out
