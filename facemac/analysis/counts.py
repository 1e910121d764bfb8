"""Streaming sufficient statistics: per-attribute counts, joint-combination counts, and per-cluster counts for the
bootstrap. Memory grows with identities and distinct combinations, never with images read.

Bootstrap clusters are identities when known. Rows without an identity are independent draws: in hard mode they are
kept only as counts of their exact (labels, validity) bit pattern, which gives the same resampling distribution as
resampling the images one by one (rows with equal patterns are exchangeable) in 24 bytes per distinct pattern. In soft
mode an anonymous image is its own cluster (its probabilities cannot be pooled), so memory grows with such images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemac.analysis.arrays import pack_bits, sum_by, unique_pairs
from facemac.analysis.correction.validation import UNCERTAIN, RowMoments
from facemac.analysis.readers import Batch

_CONSOLIDATE_AT = 2_000_000  # pending (key, count) entries before they are merged


class _KeyCounter:
    """Counts of (optional unit, uint64 key) pairs, merged lazily so memory follows distinct pairs only."""

    def __init__(self, with_units: bool):
        self.with_units = with_units
        self._units: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._pending = 0

    def add(self, keys: np.ndarray, counts: np.ndarray, units: np.ndarray | None = None) -> None:
        self._keys.append(keys)
        self._counts.append(counts)
        if self.with_units:
            self._units.append(units)
        self._pending += len(keys)
        if self._pending > _CONSOLIDATE_AT and len(self._keys) > 1:
            self._merge()

    def _merge(self) -> None:
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.uint64)
        counts = np.concatenate(self._counts) if self._counts else np.zeros(0, np.float64)
        if self.with_units:
            units = np.concatenate(self._units) if self._units else np.zeros(0, np.uint64)
            order = np.lexsort((keys, units))
            units, keys, counts = units[order], keys[order], counts[order]
            new = np.r_[True, (units[1:] != units[:-1]) | (keys[1:] != keys[:-1])] if len(keys) else np.zeros(0, bool)
            starts = np.flatnonzero(new)
            self._units = [units[starts]]
        else:
            order = np.argsort(keys, kind="stable")
            keys, counts = keys[order], counts[order]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
        self._keys = [keys[starts]]
        self._counts = [np.add.reduceat(counts, starts) if len(starts) else counts[:0]]
        self._pending = len(starts)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(keys, counts, units) with each (unit, key) once, sorted."""
        self._merge()
        return self._keys[0], self._counts[0], (self._units[0] if self.with_units else None)


@dataclass
class Units:
    """Bootstrap clusters of one dataset; every cluster is one draw of the resampling.

    Clusters: identities (and, in soft mode, single anonymous images) with ``n``/``s`` [C, A] valid counts and
    positive sums over their images, and joint entries (``joint_unit``, ``joint_key``, ``joint_count``).
    Patterns: anonymous images in hard mode, grouped by (``pattern_labels``, ``pattern_valid``) bit codes over all
    analysed attributes; ``pattern_count`` [P] images share each pattern, and each of them is one draw.
    """

    n: np.ndarray
    s: np.ndarray
    joint_unit: np.ndarray
    joint_key: np.ndarray
    joint_count: np.ndarray
    pattern_labels: np.ndarray
    pattern_valid: np.ndarray
    pattern_count: np.ndarray
    num_identities: int
    identity_units: dict[str, int] | None = None  # identity name -> cluster index (joins audited faces to clusters)

    @property
    def num_clusters(self) -> int:
        return len(self.n)

    @property
    def draws(self) -> int:
        """Independent draws per replicate: clusters plus anonymous images."""
        return int(self.num_clusters + self.pattern_count.sum())


@dataclass
class PerIdentity:
    """``n`` valid labels and ``s`` hard positives, [identities, A], of one dataset's named identities."""

    n: np.ndarray
    s: np.ndarray


@dataclass
class DatasetCounts:
    """Everything the analysis keeps about one dataset."""

    rows: int
    n: np.ndarray  # [A] rows where the attribute counts
    positives: np.ndarray  # [A] hard positives, or summed probabilities in soft mode
    dropped: np.ndarray  # [A] predictions removed by the reliability filter
    joint_keys: np.ndarray  # [K] sorted uint64 combination codes (over the joint attributes)
    joint_counts: np.ndarray  # [K] rows with that combination
    units: Units | None
    per_identity: PerIdentity | None = None  # hard-label counts per named identity (analysis/identity.py fills it)
    # row-level sums of probabilities, hard labels and the uncertain band (correction/validation.py RowMoments): the
    # no-audit correction's assumption check draws its moments from them, conditioned on each replicate's rate
    row_moments: RowMoments | None = None


class CountAccumulator:
    """Feeds batches in, returns DatasetCounts; ``track_units`` keeps what the bootstrap needs."""

    def __init__(self, thresholds: np.ndarray, joint_columns: np.ndarray, soft: bool, track_units: bool,
                 moments: bool = False):
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.joint_columns = np.asarray(joint_columns, dtype=np.int64)
        self.soft = soft
        self.track_units = track_units
        a = len(self.thresholds)
        self.rows = 0
        self.n = np.zeros(a, dtype=np.int64)
        self.pos = np.zeros(a, dtype=np.float64)
        self.dropped = np.zeros(a, dtype=np.int64)
        # row sums for the no-audit correction's check (RowMoments); only when it can apply (hard labels, an
        # annotation with validation predictions and no audit): six more passes over every batch otherwise wasted
        self.moments = {k: np.zeros(a, dtype=np.float64) for k in ("p", "u", "pp", "yp", "yu", "pu")} \
            if moments and not soft else None
        self.joint = _KeyCounter(with_units=False)
        self.unit_joint = _KeyCounter(with_units=True)
        self.patterns = _KeyCounter(with_units=True)  # "unit" = validity bits, key = label bits
        self._ids: dict[str, int] = {}
        self._num_units = 0
        self._cap = 0
        self._un = np.zeros((0, a), np.float32)
        self._us = np.zeros((0, a), np.float32)

    def _new_units(self, count: int) -> np.ndarray:
        start = self._num_units
        self._num_units += count
        if self._num_units > self._cap:
            cap = max(self._num_units, 2 * self._cap, 1024)
            for name in ("_un", "_us"):
                old = getattr(self, name)
                new = np.zeros((cap, old.shape[1]), dtype=old.dtype)
                new[:len(old)] = old
                setattr(self, name, new)
            self._cap = cap
        return np.arange(start, start + count, dtype=np.int64)

    def add(self, batch: Batch) -> None:
        """Count one batch."""
        if len(batch) == 0:
            return
        valid = batch.valid
        hard = (batch.values > self.thresholds) & valid  # the rule training tuned the thresholds for
        contrib = np.where(valid, batch.values, 0.0).astype(np.float32) if self.soft else hard
        self.rows += len(batch)
        self.n += valid.sum(0)
        self.pos += contrib.sum(0, dtype=np.float64)
        self.dropped += batch.dropped
        if self.moments is not None:
            self._add_moments(batch.values, valid, hard)
        jcols = self.joint_columns
        jrows = valid[:, jcols].all(1) if len(jcols) else np.zeros(len(batch), bool)
        jkeys = pack_bits(hard[:, jcols]) if len(jcols) else np.zeros(len(batch), np.uint64)
        keys, counts = np.unique(jkeys[jrows], return_counts=True)
        self.joint.add(keys, counts.astype(np.float64))
        if self.track_units:
            self._add_units(batch, valid, hard, contrib, jrows, jkeys)

    def _add_moments(self, values: np.ndarray, valid: np.ndarray, hard: np.ndarray) -> None:
        p = np.where(valid, values, np.float32(0.0))
        u = (p > UNCERTAIN[0]) & (p < UNCERTAIN[1])
        m = self.moments
        m["p"] += p.sum(0, dtype=np.float64)
        m["u"] += u.sum(0)
        m["pp"] += np.einsum("ba,ba->a", p, p, dtype=np.float64)
        m["yp"] += np.where(hard, p, np.float32(0.0)).sum(0, dtype=np.float64)
        m["yu"] += (hard & u).sum(0)
        m["pu"] += np.where(u, p, np.float32(0.0)).sum(0, dtype=np.float64)

    def _add_units(self, batch: Batch, valid, hard, contrib, jrows, jkeys) -> None:
        codes = batch.identity_codes
        known = codes >= 0
        if not self.soft and hard.shape[1] <= 64:
            anon = ~known
            if anon.any():  # exchangeable rows: only their (labels, validity) pattern counts
                labels, valids, _, counts = unique_pairs(pack_bits(hard[anon]), pack_bits(valid[anon]))
                self.patterns.add(labels, counts.astype(np.float64), valids)
            rows = np.flatnonzero(known)
        else:
            rows = np.arange(len(batch))
        if not len(rows):
            return
        unit = np.empty(len(rows), dtype=np.int64)
        row_known = known[rows]
        if row_known.any():
            used, inverse = np.unique(codes[rows][row_known], return_inverse=True)
            mapped = np.array([self._ids.get(name, -1) for name in batch.identity_names[used]], dtype=np.int64)
            fresh = np.flatnonzero(mapped < 0)
            if len(fresh):
                mapped[fresh] = self._new_units(len(fresh))
                for i in fresh:
                    self._ids[batch.identity_names[used[i]]] = int(mapped[i])
            unit[row_known] = mapped[inverse.ravel()]
        if (~row_known).any():  # soft mode / > 64 attributes: each anonymous image is its own cluster
            unit[~row_known] = self._new_units(int((~row_known).sum()))
        used_units, local = np.unique(unit, return_inverse=True)
        a = valid.shape[1]
        block = np.concatenate([valid[rows], contrib[rows]], axis=1).astype(np.float32)
        sums = sum_by(local.ravel(), block, len(used_units))
        self._un[used_units] += sums[:, :a]
        self._us[used_units] += sums[:, a:]
        jr = jrows[rows]
        if jr.any():
            units, keys, _, counts = unique_pairs(unit[jr], jkeys[rows][jr])
            self.unit_joint.add(keys, counts.astype(np.float64), units)

    def result(self) -> DatasetCounts:
        """Final counts (merges the pending joint entries)."""
        keys, counts, _ = self.joint.result()
        units = None
        if self.track_units:
            jkey, jcount, junit = self.unit_joint.result()
            plabels, pcount, pvalid = self.patterns.result()
            u = self._num_units
            units = Units(n=self._un[:u].copy(), s=self._us[:u].copy(), joint_unit=junit.astype(np.int64),
                          joint_key=jkey, joint_count=jcount, pattern_labels=plabels.astype(np.uint64),
                          pattern_valid=pvalid.astype(np.uint64), pattern_count=pcount,
                          num_identities=len(self._ids), identity_units=self._ids)
        return DatasetCounts(rows=self.rows, n=self.n.copy(), positives=self.pos.copy(), dropped=self.dropped.copy(),
                             joint_keys=keys, joint_counts=counts, units=units,
                             row_moments=None if self.moments is None else RowMoments(
                                 n=self.n.astype(np.float64), y=self.pos.copy(),
                                 **{k: v.copy() for k, v in self.moments.items()}))
