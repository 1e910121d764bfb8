"""Array helpers of the streamed counts, the joint divergences and the bootstrap: bit codes of label combinations,
sorted distinct values and grouped sums. A leaf module (numpy and scipy only), so every analysis module can use it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


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


def sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Row sums of ``values`` [B, A] grouped by ``index`` in [0, size), as a sparse one-hot product (fast in C)."""
    onehot = sp.csr_matrix((np.ones(len(index), dtype=values.dtype), (index, np.arange(len(index)))),
                           shape=(size, len(index)))
    return np.asarray(onehot @ values)


def unique_pairs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (first, second) pairs: (firsts, seconds, inverse [B], counts); lexsort beats np.unique(axis=0)."""
    order = np.lexsort((second, first))
    f, s = first[order], second[order]
    new = np.r_[True, (f[1:] != f[:-1]) | (s[1:] != s[:-1])] if len(f) else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    inverse = np.empty(len(f), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return f[starts], s[starts], inverse, np.diff(np.r_[starts, len(f)])
