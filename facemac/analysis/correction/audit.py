"""Audited (prediction-powered) rate estimates: the MAC's rate over all N rows plus the design-weighted mean of
(audited label − MAC label) over the audited rows (Angelopoulos et al., Science 2023).

Valid under any shift between the MAC's training domain and the target: the disagreements are measured on the target
itself. Strata (``stratum``/``stratum_size``) are combined by their sizes, Σ_h W_h·mean_h, per attribute over the rows
judged for it; sampler ``weight`` alone gives a Hajek (ratio) mean; no sampler columns: a simple random sample. The
bootstrap resamples the audited rows within their strata (rows, not identities: the sampler draws faces).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facemac.annotation_table import reliability_column
from facemac.audit.format import csv_name, read_audit
from facemac.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class AuditRows:
    """One dataset's audit aligned with the analysed attributes: per audited row the MAC's value (0/1 label, or the
    probability in soft mode) and the person's label; ``judged`` [n, A] where both exist."""

    dataset: str
    source: Path
    mac: np.ndarray        # [n, A] float64
    truth: np.ndarray      # [n, A] float64
    judged: np.ndarray     # [n, A] bool
    stratum: np.ndarray    # [n] int64 index into stratum_weight
    stratum_weight: np.ndarray  # [H] W_h = N_h / sum N_h (all ones / H... only used with strata)
    weights: np.ndarray | None  # [n] Hajek weights (sampler weight column without strata), else None
    design: str            # "simple" | "stratified" | "weighted"
    identities: list[str | None] | None = None  # the annotation table's identity of each audited face

    @property
    def size(self) -> int:
        return len(self.mac)

    def judged_per_attribute(self) -> np.ndarray:
        return self.judged.sum(0)


def audit_sources(spec, names: list[str]) -> dict[str, Path]:
    """``analyze.audit``: null, a folder of ``<dataset>.csv`` (datasets without one are not audited) or a mapping
    ``{dataset: csv}`` (every key must be an input)."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"analyze.audit={spec}: not a folder of <dataset>.csv audits (or use a mapping "
                              "{dataset: csv})")
        found = {n: folder / csv_name(n) for n in names if (folder / csv_name(n)).is_file()}
        stray = sorted(p.stem for p in folder.glob("*.csv") if p.stem not in names)
        if stray:
            raise ConfigError(f"analyze.audit={spec}: {', '.join(p + '.csv' for p in stray)} audit(s) a dataset that "
                              f"is not an input of this analysis (inputs: {', '.join(names)})")
        if not found:
            raise ConfigError(f"analyze.audit={spec}: holds no <dataset>.csv for any input ({', '.join(names)})")
        return found
    if hasattr(spec, "items"):
        out = {}
        for k, v in spec.items():
            if str(k) not in names:
                raise ConfigError(f"analyze.audit: {k!r} is not an input of this analysis (inputs: {', '.join(names)})")
            path = Path(str(v)).expanduser()
            if not path.is_file():
                raise ConfigError(f"analyze.audit.{k}={v}: no such audit file")
            out[str(k)] = path
        return out
    raise ConfigError(f"analyze.audit={spec!r}: use a folder of <dataset>.csv or a mapping {{dataset: csv}}")


def mac_values_at(files: list[Path], paths: list[str], attributes: list[str], thresholds: np.ndarray, soft: bool,
                  min_reliability: float | None, source: Path, dataset: str
                  ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(MAC values [n, A] as the counting sees them, valid [n, A], identities) at the audited ``paths``, read from the
    annotation parts; an audited path that is not a row of the table is refused (an audit of another dataset?)."""
    want = pa.array(paths, pa.string())
    where = {p: i for i, p in enumerate(paths)}
    values = np.full((len(paths), len(attributes)), np.nan)
    valid = np.zeros((len(paths), len(attributes)), bool)
    found = np.zeros(len(paths), bool)
    identities: list[str | None] = [None] * len(paths)
    for file in files:
        pf = pq.ParquetFile(file)
        names = set(pf.schema_arrow.names)
        rel = [reliability_column(a) for a in attributes]
        use_rel = min_reliability is not None and any(c in names for c in rel)
        cols = ["path", *(["identity"] if "identity" in names else []), *attributes,
                *[c for c in rel if use_rel and c in names]]
        table = pq.read_table(file, columns=cols)
        mask = pc.is_in(table.column("path"), value_set=want)
        sub = table.filter(mask)
        if not sub.num_rows:
            continue
        rows = np.array([where[p] for p in sub.column("path").to_pylist()], np.int64)
        found[rows] = True
        if "identity" in names:
            for r, ident in zip(rows, sub.column("identity").to_pylist()):
                identities[r] = ident or None
        for j, a in enumerate(attributes):
            v = sub.column(a).to_numpy(zero_copy_only=False).astype(np.float64)
            ok = ~np.isnan(v)
            if use_rel and rel[j] in names:
                ok &= sub.column(rel[j]).to_numpy(zero_copy_only=False) >= min_reliability
            values[rows, j] = v if soft else (v > thresholds[j]).astype(np.float64)
            valid[rows, j] = ok
    if not found.all():
        i = int(np.flatnonzero(~found)[0])
        raise DataError(f"{source}, line {i + 2}: {paths[i]!r} is not a face of the annotation of {dataset!r} "
                        f"({int((~found).sum())} of {len(paths)} audited paths are not; an audit of another dataset?)")
    return values, valid, identities


def load_audit(path: Path, dataset: str, dataset_attributes: list[str], attributes: list[str], files: list[Path],
               thresholds: np.ndarray, soft: bool, min_reliability: float | None,
               num_images: int | None) -> AuditRows:
    """Read, validate and align one audit with the analysed ``attributes`` (columns of attributes not analysed are
    ignored, with a log line; an audit judging none of them is refused)."""
    audit = read_audit(path, dataset, dataset_attributes, known_paths=None, num_images=num_images)
    mac, valid, identities = mac_values_at(files, audit.paths, attributes, thresholds, soft, min_reliability, path, dataset)
    truth = np.zeros_like(mac)
    judged = np.zeros_like(valid)
    for j, a in enumerate(attributes):
        if a in audit.attributes:
            lab, jd = audit.column(a)
            truth[:, j], judged[:, j] = lab, jd & valid[:, j]
    if not judged.any():
        raise DataError(f"{path}: judges none of the analysed attributes ({', '.join(attributes[:5])}, …)")
    ignored = [a for a in audit.attributes if a not in attributes]
    if ignored:
        log.info("%s: audit columns %s are not analysed; ignored", path, ignored[:5])
    if audit.strata is not None:
        names = sorted(audit.stratum_sizes)
        index = {s: i for i, s in enumerate(names)}
        stratum = np.array([index[s] for s in audit.strata], np.int64)
        sizes = np.array([audit.stratum_sizes[s] for s in names], np.float64)
        return AuditRows(dataset, path, mac, truth, judged, stratum, sizes / sizes.sum(), None, "stratified",
                         identities)
    zero = np.zeros(len(mac), np.int64)
    if audit.weights is not None:
        return AuditRows(dataset, path, mac, truth, judged, zero, np.ones(1), audit.weights, "weighted", identities)
    return AuditRows(dataset, path, mac, truth, judged, zero, np.ones(1), None, "simple", identities)


def _combine(rows: AuditRows, w: np.ndarray) -> np.ndarray:
    """Design-weighted mean disagreement [R, A] from per-row draw multiplicities ``w`` [R, n] (ones: the point).

    Per stratum h: mean_h = Σ w_i j_i d_i / Σ w_i j_i; Δ = Σ_h W_h mean_h over the strata with judged rows for the
    attribute (W renormalised over them; a stratum with no judgement of an attribute is assumed to err as the rest)."""
    d = np.where(rows.judged, rows.truth - rows.mac, 0.0)
    jw = rows.judged.astype(np.float64)
    if rows.weights is not None:
        w = w * rows.weights[None, :]
    h = len(rows.stratum_weight)
    num = np.zeros((w.shape[0], h, d.shape[1]))
    den = np.zeros_like(num)
    for s in range(h):
        cols = rows.stratum == s
        num[:, s] = w[:, cols] @ d[cols]
        den[:, s] = w[:, cols] @ jw[cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    weight = rows.stratum_weight[None, :, None] * (den > 0)
    total = weight.sum(1)
    return np.where(total > 0, (weight * mean).sum(1) / np.where(total > 0, total, 1.0), 0.0)


def audit_delta(rows: AuditRows) -> np.ndarray:
    """The point correction Δ [A] (0 where no row judges the attribute)."""
    return _combine(rows, np.ones((1, rows.size)))[0]


def audit_delta_replicates(rows: AuditRows, rng: np.random.Generator, reps: int,
                           identity_weights: np.ndarray | None = None) -> np.ndarray:
    """Δ [reps, A] per bootstrap replicate.

    With ``identity_weights`` [reps, n] (how often each audited face's identity was drawn by the identity bootstrap
    of the same replicate; NaN for faces without identity, which get independent Poisson(1) weights), the audited
    faces move with their identities, so Δ and the counted rate vary together: an identity trait the MAC blurs is
    then as variable in the estimate as in the population. Without them, the audited rows are resampled with
    replacement within their strata (sizes kept)."""
    if identity_weights is not None:
        w = np.array(identity_weights, dtype=np.float64)
        anon = np.isnan(w)
        if anon.any():
            w[anon] = rng.poisson(1.0, size=int(anon.sum()))
        return _combine(rows, w)
    w = np.zeros((reps, rows.size))
    for s in range(len(rows.stratum_weight)):
        cols = np.flatnonzero(rows.stratum == s)
        if len(cols):
            w[:, cols] = rng.multinomial(len(cols), np.full(len(cols), 1.0 / len(cols)), size=reps)
    return _combine(rows, w)


def audit_delta_variance(rows: AuditRows) -> np.ndarray:
    """Design variance of Δ [A] (normal approximation for n_boot=0): Σ_h W_h² s_h²/n_h over the strata used, with
    the Hajek linearisation for weights; s² with ddof=0 as ppi-python."""
    d = np.where(rows.judged, rows.truth - rows.mac, 0.0)
    a = d.shape[1]
    if rows.weights is not None:
        w = rows.weights[:, None] * rows.judged
        tot = w.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (w * d).sum(0) / tot
            resid = np.where(rows.judged, d - mean, 0.0)
            return np.where(tot > 0, (w ** 2 * resid ** 2).sum(0) / tot ** 2, 0.0)
    var = np.zeros(a)
    used = np.zeros(a)
    for s in range(len(rows.stratum_weight)):
        cols = rows.stratum == s
        j = rows.judged[cols]
        n = j.sum(0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(n > 0, (d[cols] * j).sum(0) / np.maximum(n, 1), 0.0)
            s2 = np.where(n > 0, ((d[cols] - m) ** 2 * j).sum(0) / np.maximum(n, 1), 0.0)
        wh = rows.stratum_weight[s] * (n > 0)
        var += wh ** 2 * np.where(n > 0, s2 / np.maximum(n, 1), 0.0)
        used += wh
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(used > 0, var / np.where(used > 0, used, 1.0) ** 2, 0.0)


def check_audit_targets(sources: Mapping[str, Path], datasets) -> None:
    """Audits correct the MAC's view: an audit of a ground-truth label input is refused."""
    by_name = {d.name: d for d in datasets}
    for name in sources:
        if not by_name[name].is_prediction:
            raise ConfigError(f"analyze.audit: {name!r} is a label file (ground truth), not the MAC's annotation; "
                              "audits correct annotations only")
