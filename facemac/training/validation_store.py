"""The validation predictions a checkpoint carries: the evidence of how the MAC errs, for the analysis's correction.

Stored under ``ckpt["validation"]`` as weights_only-loadable tensors: ``identity`` int64 [N] (codes 0..I-1 in order of
first appearance; rows without an identity get their own code), ``labels`` int8 [N, A] (1/0, -1 unknown), ``probs``
float16 [N, A] (resolution 2^-11 near 0.5: a row flips at a threshold only within that distance, far below the
split's sampling error), plus ``split`` and ``rows_total``. Bounded: above ``train.validation_rows`` rows, whole
identities are kept at random (seeded) until the bound is reached, so identity resampling stays valid.
Bytes: N x (3 A + 8) (2 for a probability, 1 for a label, 8 for the identity): CelebA's 19,867 x 40 = 2.5 MB;
MAAD-Face (about 330k validation rows at a 10 % identity split) is bounded to 50,000 x 47 = 7.5 MB (49 MB unbounded).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from facemac.data.table import FaceTable
from facemac.training.loop import Predictions


def identity_codes(identities: list[str] | None, n: int) -> np.ndarray:
    """int64 [n] codes 0..I-1 in order of first appearance; None (or a missing identity) = one identity per row."""
    if identities is None:
        return np.arange(n, dtype=np.int64)
    codes: dict[Any, int] = {}
    out = np.empty(n, dtype=np.int64)
    for i, ident in enumerate(identities):
        key = ("row", i) if ident is None or (isinstance(ident, float) and np.isnan(ident)) or ident == "" else ident
        out[i] = codes.setdefault(key, len(codes))
    return out


def bounded_rows(identity: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Row positions to keep: all when ``len(identity) <= max_rows``, else whole identities in a seeded random order
    until the next one would pass ``max_rows``."""
    n = len(identity)
    if max_rows <= 0 or n <= max_rows:
        return np.arange(n)
    order = np.random.default_rng([seed, 20]).permutation(int(identity.max()) + 1)
    sizes = np.bincount(identity, minlength=len(order))
    keep = order[np.cumsum(sizes[order]) <= max_rows]
    return np.flatnonzero(np.isin(identity, keep))


def validation_payload(preds: Predictions, table: FaceTable, max_rows: int, seed: int = 0) -> dict[str, Any] | None:
    """``ckpt["validation"]`` from a validation pass over ``table`` (the val split); None when ``max_rows`` is 0."""
    if max_rows == 0 or len(preds.index) == 0:
        return None
    ids = None if table.identities is None else [table.identities[i] for i in preds.index]
    identity = identity_codes(ids, len(preds.index))
    rows = bounded_rows(identity, int(max_rows), seed)
    identity = identity_codes([int(v) for v in identity[rows]], len(rows))  # dense codes again after the bound
    labels = np.where(preds.mask[rows], (preds.labels[rows] > 0.5).astype(np.int8), np.int8(-1)).astype(np.int8)
    return {"identity": torch.from_numpy(identity), "labels": torch.from_numpy(labels),
            "probs": torch.from_numpy(np.asarray(preds.probs[rows], dtype=np.float16)),
            "split": "val", "rows_total": int(len(preds.index))}
