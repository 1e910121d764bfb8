"""Audited (prediction-powered) rate estimates: the MAC's rate over all N rows plus the design-weighted mean of
(audited label − MAC label) over the audited rows (Angelopoulos et al., Science 2023).

Valid under any shift between the MAC's training domain and the target: the disagreements are measured on the target
itself. Strata (``stratum``/``stratum_size``) are combined by their sizes, Σ_h W_h·mean_h, per attribute over the rows
judged for it; sampler ``weight`` alone gives a Hajek (ratio) mean; no sampler columns: a simple random sample. In
the analysis' bootstrap the audited faces move with their identities (``replicate_weights`` with the identity draws
of the same replicate), so the correction and the counted rate vary together; without identity draws the audited rows
are resampled within their strata.
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


@dataclass
class _Moments:
    """Design-weighted moments of the audited (label y, MAC f) per replicate, stratum and attribute [R, H, A]."""

    share: np.ndarray   # W_h renormalised over the strata with judged rows for the attribute
    mean_y: np.ndarray
    mean_f: np.ndarray
    var_y: np.ndarray
    var_f: np.ndarray
    cov: np.ndarray
    inv_n: np.ndarray   # 1 / effective judged rows (Kish: (Σw)² / Σw² with design weights), fixed at the sample's

    def combined(self, x: np.ndarray) -> np.ndarray:
        return (self.share * x).sum(1)


def _moments(rows: AuditRows, w: np.ndarray) -> _Moments:
    """``w`` [R, n]: per-row draw multiplicities (ones: the sample itself). Strata without a judgement of an
    attribute drop out and W is renormalised over the rest (they are assumed to err as the others do)."""
    y = np.where(rows.judged, rows.truth, 0.0)
    f = np.where(rows.judged, rows.mac, 0.0)
    jw = rows.judged.astype(np.float64)
    design = rows.weights if rows.weights is not None else np.ones(rows.size)
    w = w * design[None, :]
    h, a, r = len(rows.stratum_weight), y.shape[1], w.shape[0]
    sums = {k: np.zeros((r, h, a)) for k in ("w", "y", "f", "yy", "ff", "yf")}
    inv_n = np.zeros((1, h, a))
    for s in range(h):
        cols = rows.stratum == s
        ws, js = w[:, cols], jw[cols]
        ys, fs = y[cols], f[cols]
        sums["w"][:, s] = ws @ js
        sums["y"][:, s], sums["f"][:, s] = ws @ ys, ws @ fs
        sums["yy"][:, s], sums["ff"][:, s], sums["yf"][:, s] = ws @ (ys * ys), ws @ (fs * fs), ws @ (ys * fs)
        dw = design[cols, None] * js
        with np.errstate(invalid="ignore", divide="ignore"):
            inv_n[0, s] = np.where(dw.sum(0) > 0, (dw ** 2).sum(0) / np.maximum(dw.sum(0), 1e-300) ** 2, 0.0)
    sw = sums["w"]
    ok = sw > 0
    den = np.where(ok, sw, 1.0)
    mean_y, mean_f = sums["y"] / den, sums["f"] / den
    var_y = np.clip(sums["yy"] / den - mean_y ** 2, 0, None)
    var_f = np.clip(sums["ff"] / den - mean_f ** 2, 0, None)
    cov = sums["yf"] / den - mean_y * mean_f
    share = rows.stratum_weight[None, :, None] * ok
    total = share.sum(1, keepdims=True)
    share = np.where(total > 0, share / np.where(total > 0, total, 1.0), 0.0)
    zero = ~ok
    for x in (mean_y, mean_f, var_y, var_f, cov):
        x[zero] = 0.0
    return _Moments(share, mean_y, mean_f, var_y, var_f, cov, inv_n)


def power_lambda(m: _Moments, counted: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The variance-minimising weight of the MAC's predictions, per replicate and attribute, in [0, 1]:
    λ = Σ_h a_h cov_h(y, f) / Σ_h a_h var_h(f), a_h = W_h² / n_h — the coefficient of survey sampling's
    regression (difference) estimator, which is PPI++'s weight (Angelopoulos, Duchi & Zrnic 2023) without its
    (1 + n/N) term: the audit is drawn from the annotated rows themselves, so the counted rate is the exact mean of
    the MAC's labels over the population and carries no error of its own to trade against. λ = 1 for a MAC that
    agrees with the person (plain prediction-powered inference); λ → 0 for a MAC at chance (the audit alone).
    Undefined (no spread of the MAC's labels among the audited faces): λ = 1, where it does not matter."""
    a = m.share ** 2 * m.inv_n
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = (a * m.cov).sum(1) / (a * m.var_f).sum(1)
    return np.clip(np.nan_to_num(lam, nan=1.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def audit_estimate(rows: AuditRows, w: np.ndarray, counted: np.ndarray, n: np.ndarray,
                   tune: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(θ̂ [R, A], λ [R, A]): θ̂ = λ·counted + Σ_h W_h (ȳ_h − λ f̄_h); ``tune`` False: λ = 1 (θ̂ = counted + Δ)."""
    m = _moments(rows, w)
    lam = power_lambda(m, counted, n) if tune else np.ones_like(np.broadcast_to(counted, m.mean_y[:, 0].shape))
    est = lam * counted + m.combined(m.mean_y) - lam * m.combined(m.mean_f)
    return est, lam


def audit_delta(rows: AuditRows) -> np.ndarray:
    """Δ = Σ_h W_h mean_h(y − f) [A], the correction at λ = 1 (0 where no row judges the attribute)."""
    m = _moments(rows, np.ones((1, rows.size)))
    return (m.combined(m.mean_y) - m.combined(m.mean_f))[0]


def replicate_weights(rows: AuditRows, rng: np.random.Generator, reps: int,
                      identity_weights: np.ndarray | None = None) -> np.ndarray:
    """[reps, n] draw multiplicities of the audited faces per bootstrap replicate.

    With ``identity_weights`` [reps, n] (how often each audited face's identity was drawn by the identity bootstrap
    of the same replicate; NaN for faces without identity, which get independent Poisson(1) weights), the audited
    faces move with their identities, so the correction and the counted rate vary together: an identity trait the
    MAC blurs is then as variable in the estimate as in the population. Without them, the audited rows are resampled
    with replacement within their strata (sizes kept)."""
    if identity_weights is not None:
        w = np.array(identity_weights, dtype=np.float64)
        anon = np.isnan(w)
        if anon.any():
            w[anon] = rng.poisson(1.0, size=int(anon.sum()))
        return w
    w = np.zeros((reps, rows.size))
    for s in range(len(rows.stratum_weight)):
        cols = np.flatnonzero(rows.stratum == s)
        if len(cols):
            w[:, cols] = rng.multinomial(len(cols), np.full(len(cols), 1.0 / len(cols)), size=reps)
    return w


def audit_variance(rows: AuditRows, counted: np.ndarray, n: np.ndarray, tune: bool = True) -> np.ndarray:
    """Variance of θ̂ [A] (normal intervals when the bootstrap is off): λ² c(1−c)/N + Σ_h a_h (var_h(y) − 2λ cov_h +
    λ² var_h(f)), moments with ddof=0 as ppi-python; at λ = 1 this is PPI's var(f)/N + var(y − f)/n."""
    m = _moments(rows, np.ones((1, rows.size)))
    c, nn = np.asarray(counted)[None], np.asarray(n)[None]
    lam = power_lambda(m, c, nn) if tune else np.ones_like(c)
    a = m.share ** 2 * m.inv_n
    lam3 = lam[:, None, :]
    inner = (a * (m.var_y - 2 * lam3 * m.cov + lam3 ** 2 * m.var_f)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (lam ** 2 * c * (1 - c) / nn + inner)[0]


def check_audit_targets(sources: Mapping[str, Path], datasets) -> None:
    """Audits correct the MAC's view: an audit of a ground-truth label input is refused."""
    by_name = {d.name: d for d in datasets}
    for name in sources:
        if not by_name[name].is_prediction:
            raise ConfigError(f"analyze.audit: {name!r} is a label file (ground truth), not the MAC's annotation; "
                              "audits correct annotations only")
