"""Which correction each dataset gets (``analyze.correction``) and the audits it reads (``analyze.audit``)."""

from __future__ import annotations

import logging

import numpy as np

from facemac.analysis.correction.audit import audit_sources, check_audit_targets, load_audit
from facemac.analysis.correction.engine import AuditCorrection, Correction
from facemac.errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("auto", "audit", "validation", "none")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"analyze.correction={mode!r}: use auto (an audit where there is one, else the checkpoint's "
                          "validation errors), audit, validation or none (the MAC's counts)")
    return mode


def build_corrections(datasets, attributes: list[str], mode: str, audit_spec, soft: bool,
                      min_reliability: float | None, validation_hook=None) -> list[Correction | None]:
    """One correction (or None: counted) per input, in input order. Every audit is read and checked before anything
    is counted, so a bad audit costs one error line and nothing else."""
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
            corr = AuditCorrection(rows)
            log.info("%s: audit %s, %d faces, %d judgements (%s design)", d.name, rows.source, rows.size,
                     int(rows.judged.sum()), rows.design)
        elif d.is_prediction and mode in ("auto", "validation") and validation_hook is not None:
            corr = validation_hook(d, attributes)
        out.append(corr)
    return out
