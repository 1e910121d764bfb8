"""Draw an audit sample from one annotated dataset: stratified on the MAC's labels of its rarest attributes, so a few
hundred faces still hold positives of attributes the MAC finds on 1 % of the faces, with the design recorded
(``stratum``, ``stratum_size``, ``weight`` columns and the sidecar) so the estimates stay unbiased.

Strata: the ``rare`` attributes whose minority label (positive, or negative for attributes on almost every face) the
MAC gives least often each get the stratum ``<attribute>=<minority label>`` of the rows it labels so, taken in order of
rarity (a row in two goes to the rarer); every other row is in ``rest``. Allocation: square-root (n_h ∝ √N_h, at
least one face per stratum, never more than the stratum holds): rare strata get far more faces than proportional
allocation would give them, without starving the large ``rest`` stratum that carries most of the weight.

Within each stratum the faces are a simple random sample of the rows (seeded: the same seed and annotation give the
same sample). Identities are *spread*, not kept together: rows are drawn one by one, so a large dataset's audit holds
mostly one face per identity, the most information per judged face (faces of one identity resemble each other), and
the identity column is kept so an estimator can still resample the audited identities as clusters. Preferring one
face per identity on purpose would give faces of large identities a smaller chance than the weights say (bias).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from facemac.annotation_table import IDENTITY, PATH, label_thresholds, verify_table
from facemac.audit.format import AuditDesign, csv_name, write_template
from facemac.errors import ConfigError, DataError

REST = "rest"
RULE = ("strata: the MAC's minority label on its {k} rarest attributes ({names}), rarest first, else 'rest'; "
        "square-root allocation, >= 1 face per stratum; simple random sample of rows within each stratum")


@dataclass
class AnnotatedRows:
    """The rows of one annotated dataset the sampler needs: paths, identities, probabilities, labels."""

    dataset: str
    group: str
    paths: list[str]
    identities: list[str | None]
    attributes: list[str]
    probs: np.ndarray        # float32 [N, A]
    thresholds: np.ndarray   # float32 [A], the set the annotation's labels use
    manifest: dict

    @property
    def labels(self) -> np.ndarray:
        return self.probs > self.thresholds


@dataclass
class AuditSample:
    """One drawn sample, row-aligned: which faces, their strata, and what the MAC said of them (for the page)."""

    dataset: str
    rows: np.ndarray          # int64 indices into AnnotatedRows
    paths: list[str]
    identities: list[str | None]
    strata: list[str]
    stratum_sizes: dict[str, int]
    attributes: list[str]
    probs: np.ndarray         # float32 [n, A]
    thresholds: np.ndarray    # float32 [A]
    design: AuditDesign

    @property
    def mac_labels(self) -> np.ndarray:
        return self.probs > self.thresholds


def read_rows(table_dir: str | Path) -> AnnotatedRows:
    """One annotation table's paths, identities and probabilities (verified; one part in memory at a time)."""
    table_dir = Path(table_dir)
    manifest, parts = verify_table(table_dir, check_sha=False)
    attributes = list(manifest["attributes"])
    thr, _ = label_thresholds(manifest, where=table_dir / "manifest.json")
    paths: list[str] = []
    ids: list[str | None] = []
    probs = []
    for p in parts:
        t = pq.read_table(p, columns=[PATH, IDENTITY, *attributes])
        paths += t.column(PATH).to_pylist()
        ids += t.column(IDENTITY).to_pylist()
        probs.append(np.stack([t.column(a).to_numpy() for a in attributes], axis=1).astype(np.float32)
                     if t.num_rows else np.empty((0, len(attributes)), np.float32))
    if not paths:
        raise DataError(f"{table_dir}: the annotation holds no rows to audit")
    return AnnotatedRows(str(manifest["dataset"]), str(manifest["group"]), paths, ids, attributes,
                         np.concatenate(probs), np.asarray([thr[a] for a in attributes], np.float32), manifest)


def assign_strata(labels: np.ndarray, attributes: Sequence[str], rare: int) -> tuple[np.ndarray, list[str]]:
    """(stratum name per row, the attributes that got a stratum, rarest first)."""
    n = len(labels)
    pos = labels.sum(axis=0)
    minority = pos <= n - pos                       # True: positives are the rarer label
    count = np.where(minority, pos, n - pos)
    order = [j for j in np.argsort(count, kind="stable") if count[j] > 0][:max(0, int(rare))]
    strata = np.full(n, REST, dtype=object)
    free = np.ones(n, dtype=bool)
    for j in order:
        hit = free & (labels[:, j] == minority[j])
        strata[hit] = f"{attributes[j]}={int(minority[j])}"
        free &= ~hit
    return strata, [attributes[j] for j in order]


def sqrt_allocation(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Faces per stratum: ∝ √size (D'Hondt's highest averages on √N_h), >= 1 each, <= size each, summing to
    min(total, Σ size)."""
    names = list(sizes)
    total = int(min(total, sum(sizes.values())))
    if total < len(names):
        raise ConfigError(f"audit.size={total} is smaller than the {len(names)} strata; raise audit.size or lower "
                          "audit.rare_attributes")
    alloc = {s: 1 for s in names}
    heap = [(-math.sqrt(sizes[s]) / 2, k, s) for k, s in enumerate(names) if sizes[s] > 1]
    heapq.heapify(heap)
    for _ in range(total - len(names)):
        _, k, s = heapq.heappop(heap)
        alloc[s] += 1
        if alloc[s] < sizes[s]:
            heapq.heappush(heap, (-math.sqrt(sizes[s]) / (alloc[s] + 1), k, s))
    return alloc


def draw_sample(rows: AnnotatedRows, size: int, seed: int = 0, rare: int = 4) -> AuditSample:
    """``size`` faces of ``rows`` (all of them when it holds fewer), stratified as the module says; deterministic."""
    if int(size) < 1:
        raise ConfigError(f"audit.size={size}; must be >= 1")
    strata, rare_names = assign_strata(rows.labels, rows.attributes, min(int(rare), max(0, int(size) - 1)))
    names = [f"{a}={v}" for a in rare_names for v in (0, 1) if f"{a}={v}" in set(strata)] + \
        ([REST] if (strata == REST).any() else [])
    sizes = {s: int((strata == s).sum()) for s in names}
    alloc = sqrt_allocation(sizes, int(size))
    rng = np.random.default_rng([int(seed), 0xA0D17])
    picked = []
    for s in names:  # fixed order and one generator: the same seed gives the same sample
        members = np.flatnonzero(strata == s)
        picked.append(np.sort(rng.choice(members, size=alloc[s], replace=False)))
    idx = np.concatenate(picked)
    idx = idx[rng.permutation(len(idx))]  # shown to the person in random order, strata mixed
    design = AuditDesign(
        dataset=rows.dataset, kind="stratified", size=len(idx), seed=int(seed),
        rule=RULE.format(k=len(rare_names), names=", ".join(rare_names) or "none"),
        strata={s: {"size": sizes[s], "sampled": alloc[s]} for s in names},
        annotation={"checkpoint_sha256": rows.manifest.get("checkpoint_sha256"),
                    "num_images": int(rows.manifest.get("num_images", len(rows.paths)))})
    return AuditSample(rows.dataset, idx, [rows.paths[i] for i in idx], [rows.identities[i] for i in idx],
                       [str(strata[i]) for i in idx], sizes, list(rows.attributes), rows.probs[idx],
                       rows.thresholds, design)


def write_sample(sample: AuditSample, out_dir: str | Path) -> Path:
    """``<out_dir>/<dataset>.csv`` (the blank template) and its sidecar ``<dataset>.json``."""
    return write_template(Path(out_dir) / csv_name(sample.dataset), sample.paths, sample.identities,
                          sample.attributes, strata=sample.strata, stratum_sizes=sample.stratum_sizes,
                          design=sample.design)


def stratified_rate(labels: np.ndarray, judged: np.ndarray, strata: Sequence[str],
                    stratum_sizes: dict[str, int]) -> tuple[float, float]:
    """(rate, standard error) of one attribute from a stratified audit: Σ_h N_h/N · mean_h, over the judged rows
    (strata without a judged face are left out and the others re-weighted); finite-population corrected."""
    strata = np.asarray(strata)
    num = var = den = 0.0
    for s, big_n in stratum_sizes.items():
        m = (strata == s) & judged
        n = int(m.sum())
        if n == 0:
            continue
        y = labels[m].astype(np.float64)
        num += big_n * y.mean()
        if n > 1:
            var += big_n ** 2 * (1 - n / big_n) * y.var(ddof=1) / n
        den += big_n
    if den == 0:
        return math.nan, math.nan
    return num / den, math.sqrt(var) / den


__all__ = ["AnnotatedRows", "AuditSample", "read_rows", "assign_strata", "sqrt_allocation", "draw_sample",
           "write_sample", "stratified_rate", "REST"]
