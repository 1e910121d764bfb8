"""Which faces to show for an attribute: the most and least confident positives, faces near the threshold and the
most confident negatives, chosen in one streamed pass over an annotation table (never the whole table in memory)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from facemac.annotation_table import IDENTITY, PATH

# kind -> what it holds; the label rule is probability > threshold (facemac.annotation_table.LABEL_RULE)
KINDS = {
    "top": "most confident positives",
    "low_positive": "least confident positives",
    "near": "near the threshold",
    "bottom": "most confident negatives",
}


@dataclass(frozen=True)
class Pick:
    """One face chosen for an attribute: its table path, identity and the MAC's probability."""

    path: str
    identity: str | None
    probability: float


@dataclass
class AttributePicks:
    """The faces chosen for one attribute of one dataset, per kind (each sorted as the kind reads)."""

    attribute: str
    threshold: float
    kinds: dict[str, list[Pick]] = field(default_factory=dict)

    def sorted_by_probability(self) -> list[Pick]:
        """Every picked face once, highest probability first (the gallery's order)."""
        seen: dict[str, Pick] = {}
        for picks in self.kinds.values():
            for p in picks:
                seen.setdefault(p.path, p)
        return sorted(seen.values(), key=lambda p: (-p.probability, p.path))


class _Best:
    """The ``k`` rows with the smallest score seen so far (ties: the earlier row), merged a batch at a time."""

    def __init__(self, k: int):
        self.k = k
        self.score = np.empty(0, np.float64)
        self.row = np.empty(0, np.int64)

    def add(self, score: np.ndarray, row: np.ndarray) -> None:
        """``score`` of the batch's rows ``row``, +inf where a row is not eligible."""
        if len(score) > self.k:  # a linear pre-selection: the k smallest and everything tied with the k-th
            kth = np.partition(score, self.k - 1)[self.k - 1]
            near = (score <= kth) & np.isfinite(score)
        else:
            near = np.isfinite(score)
        score, row = score[near], row[near]
        score = np.concatenate([self.score, score])
        row = np.concatenate([self.row, row])
        keep = np.lexsort((row, score))[: self.k]
        self.score, self.row = score[keep], row[keep]


def _scores(kind: str, p: np.ndarray, t: float) -> np.ndarray:
    """Scores for a kind, smaller picked first; +inf for rows the kind does not hold (and unknown values)."""
    inf = np.inf
    if kind == "top":
        return np.where(p > t, -p, inf)
    if kind == "low_positive":
        return np.where(p > t, p, inf)
    if kind == "near":
        return np.where(np.isnan(p), inf, np.abs(p - t))
    return np.where(p <= t, p, inf)  # bottom (NaN compares False: excluded)


def iter_rows(files: Sequence[Path], attributes: Sequence[str],
              batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """(paths [B] object, identities [B] object or None, probabilities [B, A] float64) a batch at a time."""
    for file in files:
        pf = pq.ParquetFile(file)
        names = set(pf.schema_arrow.names)
        columns = [PATH, *([IDENTITY] if IDENTITY in names else []), *attributes]
        for rb in pf.iter_batches(batch_size=batch_size, columns=columns):
            probs = np.stack([rb.column(a).to_numpy(zero_copy_only=False).astype(np.float64)
                              for a in attributes], axis=1) if attributes else np.empty((rb.num_rows, 0))
            paths = np.asarray(rb.column(PATH).to_pylist(), dtype=object)
            ids = np.asarray(rb.column(IDENTITY).to_pylist(), dtype=object) if IDENTITY in names else None
            yield paths, ids, probs


def pick_faces(files: Sequence[Path], thresholds: dict[str, float], per_kind: int,
               kinds: Sequence[str] = tuple(KINDS), batch_size: int = 65536) -> dict[str, AttributePicks]:
    """For every attribute in ``thresholds``: up to ``per_kind`` faces of each kind, in one pass over ``files``."""
    attributes = list(thresholds)
    thr = np.array([thresholds[a] for a in attributes], np.float64)
    best = {(a, k): _Best(per_kind) for a in attributes for k in kinds}
    kept_paths: dict[int, tuple[str, str | None, np.ndarray]] = {}
    offset = 0
    for paths, ids, probs in iter_rows(files, attributes, batch_size):
        rows = np.arange(offset, offset + len(paths))
        for j, a in enumerate(attributes):
            for k in kinds:
                best[(a, k)].add(_scores(k, probs[:, j], float(thr[j])), rows)
        live = np.concatenate([b.row for b in best.values()]) if best else np.empty(0, np.int64)
        for i in np.unique(live[live >= offset]) - offset:  # only candidates' rows are kept, each a copy: a row
            # view would keep its whole batch of probabilities alive (179 MiB at 4 x 500k x 47, issue #20)
            kept_paths[offset + int(i)] = (str(paths[i]), None if ids is None or ids[i] is None else str(ids[i]),
                                           probs[i].copy())
        alive = set(live.tolist())
        kept_paths = {r: v for r, v in kept_paths.items() if r in alive}
        offset += len(paths)
    out: dict[str, AttributePicks] = {}
    for j, a in enumerate(attributes):
        ap = AttributePicks(a, float(thr[j]))
        for k in kinds:
            ap.kinds[k] = [Pick(kept_paths[int(r)][0], kept_paths[int(r)][1], float(kept_paths[int(r)][2][j]))
                           for r in best[(a, k)].row]
        out[a] = ap
    return out
