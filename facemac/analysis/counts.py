"""Streaming sufficient statistics: per-attribute counts, joint-combination counts, and per-cluster counts for the
bootstrap. Memory grows with identities and distinct combinations, never with images read.

Bootstrap clusters ("units") are identities when known. Rows without an identity are independent draws: in hard mode
they are grouped by their exact (labels, validity) pattern, which gives the same resampling distribution as resampling
the images one by one (rows with equal patterns are exchangeable) at a fraction of the memory. Each unit keeps sums
over its members plus ``m`` = how many independent draws it stands for (1 for an identity, the row count for a pattern).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from facemac.analysis.readers import Batch

_CONSOLIDATE_AT = 2_000_000  # pending (key, count) entries before they are merged


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + diff: much faster than np.unique's hash path for large uint64 arrays)."""
    out = np.sort(values)
    return out[np.r_[True, out[1:] != out[:-1]]] if len(out) else out


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """[B, k<=64] bool -> [B] uint64 with bit i = column i (combination code)."""
    rows, k = bits.shape
    if k > 64:
        raise ValueError("at most 64 attributes fit a uint64 combination code")
    packed = np.packbits(bits, axis=1, bitorder="little")
    out = np.zeros((rows, 8), dtype=np.uint8)
    out[:, :packed.shape[1]] = packed
    return out.view("<u8").ravel()


def unpack_bits(codes: np.ndarray, k: int) -> np.ndarray:
    """Inverse of pack_bits: [B] uint64 -> [B, k] bool."""
    as_bytes = np.ascontiguousarray(codes, dtype="<u8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :k].astype(bool)


def _sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Row sums of ``values`` [B, A] grouped by ``index`` in [0, size), as a sparse one-hot product (fast in C)."""
    onehot = sp.csr_matrix((np.ones(len(index), dtype=values.dtype), (index, np.arange(len(index)))),
                           shape=(size, len(index)))
    return np.asarray(onehot @ values)


def _unique_pairs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (first, second) pairs: (firsts, seconds, inverse [B], counts); lexsort beats np.unique(axis=0)."""
    order = np.lexsort((second, first))
    f, s = first[order], second[order]
    new = np.r_[True, (f[1:] != f[:-1]) | (s[1:] != s[:-1])] if len(f) else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    inverse = np.empty(len(f), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return f[starts], s[starts], inverse, np.diff(np.r_[starts, len(f)])


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
            units = np.concatenate(self._units) if self._units else np.zeros(0, np.int64)
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
    """Bootstrap clusters: ``m`` [U] draws each stands for, ``n``/``s`` [U, A] valid counts and positive sums over
    members, joint entries (``joint_unit``, ``joint_key``, ``joint_count``) summed over members."""

    m: np.ndarray
    n: np.ndarray
    s: np.ndarray
    joint_unit: np.ndarray
    joint_key: np.ndarray
    joint_count: np.ndarray
    num_identities: int


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


class CountAccumulator:
    """Feeds batches in, returns DatasetCounts; ``track_units`` keeps what the bootstrap needs."""

    def __init__(self, thresholds: np.ndarray, joint_columns: np.ndarray, soft: bool, track_units: bool):
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.joint_columns = np.asarray(joint_columns, dtype=np.int64)
        self.soft = soft
        self.track_units = track_units
        a = len(self.thresholds)
        self.rows = 0
        self.n = np.zeros(a, dtype=np.int64)
        self.pos = np.zeros(a, dtype=np.float64)
        self.dropped = np.zeros(a, dtype=np.int64)
        self.joint = _KeyCounter(with_units=False)
        self.unit_joint = _KeyCounter(with_units=True)
        self._ids: dict[str, int] = {}
        self._patterns: dict[tuple[int, int], int] = {}
        self._num_units = 0
        self._cap = 0
        self._m = np.zeros(0, np.float64)
        self._un = np.zeros((0, a), np.float32)
        self._us = np.zeros((0, a), np.float32)

    def _grow(self, needed: int) -> None:
        if needed <= self._cap:
            return
        cap = max(needed, 2 * self._cap, 1024)
        for name in ("_m", "_un", "_us"):
            old = getattr(self, name)
            new = np.zeros((cap,) + old.shape[1:], dtype=old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)
        self._cap = cap

    def _new_units(self, count: int) -> np.ndarray:
        start = self._num_units
        self._num_units += count
        self._grow(self._num_units)
        return np.arange(start, start + count, dtype=np.int64)

    def add(self, batch: Batch) -> None:
        """Count one batch."""
        if len(batch) == 0:
            return
        valid = batch.valid
        hard = (batch.values >= self.thresholds) & valid
        contrib = np.where(valid, batch.values, 0.0).astype(np.float32) if self.soft else hard
        self.rows += len(batch)
        self.n += valid.sum(0)
        self.pos += contrib.sum(0, dtype=np.float64)
        self.dropped += batch.dropped
        jcols = self.joint_columns
        jrows = valid[:, jcols].all(1) if len(jcols) else np.zeros(len(batch), bool)
        jkeys = pack_bits(hard[:, jcols]) if len(jcols) else np.zeros(len(batch), np.uint64)
        keys, counts = np.unique(jkeys[jrows], return_counts=True)
        self.joint.add(keys, counts.astype(np.float64))
        if self.track_units:
            self._add_units(batch, valid, hard, contrib, jrows, jkeys)

    def _add_units(self, batch: Batch, valid, hard, contrib, jrows, jkeys) -> None:
        codes = batch.identity_codes
        unit = np.empty(len(batch), dtype=np.int64)
        known = codes >= 0
        if known.any():
            used, inverse = np.unique(codes[known], return_inverse=True)
            mapped = np.empty(len(used), dtype=np.int64)
            fresh = []
            for i, name in enumerate(batch.identity_names[used]):
                uid = self._ids.get(name)
                if uid is None:
                    fresh.append(i)
                else:
                    mapped[i] = uid
            if fresh:
                new = self._new_units(len(fresh))
                mapped[fresh] = new
                self._m[new] = 1.0
                for i, uid in zip(fresh, new):
                    self._ids[batch.identity_names[used[i]]] = int(uid)
            unit[known] = mapped[inverse]
        anon = np.flatnonzero(~known)
        if len(anon):
            if self.soft or hard.shape[1] > 64:  # every anonymous row is its own draw
                new = self._new_units(len(anon))
                self._m[new] = 1.0
                unit[anon] = new
            else:  # exchangeable rows: one unit per (labels, validity) pattern
                hs, vs, inverse, counts = _unique_pairs(pack_bits(hard[anon]), pack_bits(valid[anon]))
                mapped = np.empty(len(hs), dtype=np.int64)
                fresh = []
                for i, (h, v) in enumerate(zip(hs.tolist(), vs.tolist())):
                    uid = self._patterns.get((h, v))
                    if uid is None:
                        fresh.append(i)
                    else:
                        mapped[i] = uid
                if fresh:
                    new = self._new_units(len(fresh))
                    mapped[fresh] = new
                    for i, uid in zip(fresh, new):
                        self._patterns[(int(hs[i]), int(vs[i]))] = int(uid)
                self._m[mapped] += counts
                unit[anon] = mapped[inverse]
        used_units, local = np.unique(unit, return_inverse=True)
        a = valid.shape[1]
        sums = _sum_by(local.ravel(), np.concatenate([valid, contrib], axis=1).astype(np.float32), len(used_units))
        self._un[used_units] += sums[:, :a]
        self._us[used_units] += sums[:, a:]
        if jrows.any():
            units, keys, _, counts = _unique_pairs(unit[jrows], jkeys[jrows])
            self.unit_joint.add(keys, counts.astype(np.float64), units)

    def result(self) -> DatasetCounts:
        """Final counts (merges the pending joint entries)."""
        keys, counts, _ = self.joint.result()
        units = None
        if self.track_units:
            jkey, jcount, junit = self.unit_joint.result()
            u = self._num_units
            units = Units(m=self._m[:u].copy(), n=self._un[:u].copy(), s=self._us[:u].copy(), joint_unit=junit,
                          joint_key=jkey, joint_count=jcount, num_identities=len(self._ids))
        return DatasetCounts(rows=self.rows, n=self.n.copy(), positives=self.pos.copy(), dropped=self.dropped.copy(),
                             joint_keys=keys, joint_counts=counts, units=units)
