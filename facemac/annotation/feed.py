"""Where annotation's batches are decoded and run: one ordered stream of (batch, probabilities, reliability).

Three engines, one contract (results in the order of ``batches``; unreadable images in ``batch["failures"]``):

* ``thread_results`` (CPU default): ``replicas`` threads, each decoding one whole batch and running the model on it.
  Decoding and torch kernels release the GIL, so the threads use the cores in parallel without handing batches
  between processes.
* ``loader_results``: a DataLoader (worker processes, or the main process with ``workers=0``) decodes, the main
  thread infers. MC-dropout runs here: its draws follow one RNG stream, re-seeded per shard (``seeds``).
* ``gpu_results``: workers only read bytes (and check them); JPEGs are decoded by nvJPEG and warped on the GPU in
  batches (facemac/data/gpu_batch.py); other formats and files nvJPEG refuses take the CPU path.

``geometry: detect`` tables go through the same three with a face detector before the warp
(facemac/data/detect_batch.py): in the inference threads (``thread_results(detector=...)``), in DataLoader workers
(``detect_loader_results``) or on the device (``gpu_detect_results``); each result then carries the detections.
"""

from __future__ import annotations

import collections
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facemac.data.dataset import FaceDataset, collate_faces
from facemac.data.detect import DetectorSettings, FaceDetector, shared_detector
from facemac.data.detect_batch import DetectBatches, device_detected_batch, load_detected_batch
from facemac.data.gpu_batch import EncodedItems, collate_encoded, device_batch
from facemac.data.table import FaceTable
from facemac.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """One batch after inference: row indices of the readable images, (index, reason) of the others."""

    index: torch.Tensor
    failures: list[tuple[int, str]]
    probs: torch.Tensor | None
    rels: torch.Tensor | None
    detections: np.ndarray | None = None  # float32 [len(index), len(DETECT_FIELDS)] for geometry: detect


def _infer(annotator: Any, batch: dict[str, Any]) -> BatchResult:
    probs = rels = None
    if len(batch["index"]):
        probs, rels = annotator.predict(batch["image"])
    return BatchResult(batch["index"], batch["failures"], probs, rels, batch.get("detections"))


def loader_results(dataset: Dataset, batches: Sequence[list[int]], annotator: Any, workers: int,
                   seeds: Sequence[int | None] | None = None) -> Iterator[BatchResult]:
    """DataLoader decoding (``workers`` processes, or inline), inference in this thread; ``seeds[i]`` re-seeds
    torch's RNG before batch i (MC-dropout draws that depend on the shard only)."""
    loader = DataLoader(dataset, batch_sampler=list(batches), num_workers=workers, collate_fn=collate_faces,
                        pin_memory=annotator.device.type == "cuda")
    for i, batch in enumerate(loader):
        if seeds is not None and seeds[i] is not None:
            torch.manual_seed(seeds[i])
        yield _infer(annotator, batch)


def _load_batch(dataset: FaceDataset, rows: list[int]) -> dict[str, Any]:
    """``collate_faces([dataset[i] for i in rows])`` for annotation, without its per-image tensors: every face is
    decoded straight into one NHWC uint8 array, handed on as an NCHW view in channels-last layout (what the model
    takes). Per 64 px face that is ~40 µs less of the ~140 µs of CPU work next to the model."""
    table, pre = dataset.table, dataset.preprocess
    s = pre.size
    buf = np.empty((len(rows), s, s, 3), dtype=np.uint8)
    ok: list[int] = []
    failures: list[tuple[int, str]] = []
    for i in rows:
        try:
            key = table.keys[i]
            lm = table.landmarks[i] if table.landmarks is not None else None
            buf[len(ok)] = pre.load(table.source.read(key), key, lm)
            ok.append(i)
        except (OSError, DataError) as e:
            failures.append((i, getattr(e, "reason", None) or f"{type(e).__name__}: {e}"))
    images = torch.from_numpy(buf[:len(ok)]).permute(0, 3, 1, 2)
    return {"image": images, "index": torch.tensor(ok, dtype=torch.long), "failures": failures}


def thread_results(dataset: Dataset, batches: Sequence[list[int]], annotator: Any,
                   replicas: int, detector: FaceDetector | None = None) -> Iterator[BatchResult]:
    """``replicas`` threads, each turning one batch of row indices into a result (decode, [detect,] collate, infer); at
    most 2 x replicas batches in flight, handed back in order."""
    if annotator.mc_samples:
        raise ValueError("MC-dropout annotation draws from one RNG stream: use loader_results")
    if annotator.eager_model is not None and batches:  # torch.compile: compile once, here, before threads call it
        annotator.warm_up(max(len(b) for b in batches))

    direct = isinstance(dataset, FaceDataset) and dataset.augment is None

    def work(rows: list[int]) -> BatchResult:
        if detector is not None:
            batch = load_detected_batch(dataset.table, dataset.preprocess, detector, rows)
        else:
            batch = _load_batch(dataset, rows) if direct else collate_faces([dataset[i] for i in rows])
        return _infer(annotator, batch)

    pending: collections.deque[Future] = collections.deque()
    todo = iter(batches)
    pool = ThreadPoolExecutor(max_workers=replicas, thread_name_prefix="annotate")
    try:
        for rows in todo:
            pending.append(pool.submit(work, rows))
            if len(pending) >= 2 * replicas:
                break
        while pending:
            result = pending.popleft().result()
            rows = next(todo, None)
            if rows is not None:
                pending.append(pool.submit(work, rows))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def gpu_results(table: FaceTable, batches: Sequence[list[int]], annotator: Any, workers: int, verify: bool = True,
                seeds: Sequence[int | None] | None = None) -> Iterator[BatchResult]:
    """Workers read bytes and plan each warp; decoding, warping and the model run on ``annotator.device``. The model
    of batch i is queued before batch i+1 is prepared, and its probabilities are fetched after: the host prepares
    the next batch while the device computes."""
    pre = annotator.preprocessor
    loader = DataLoader(EncodedItems(table, pre, verify), batch_sampler=list(batches), num_workers=workers,
                        collate_fn=collate_encoded)
    queued: tuple[torch.Tensor, list[tuple[int, str]], torch.Tensor | None, torch.Tensor | None] | None = None
    for i, batch in enumerate(loader):
        images, index, failures = device_batch(batch, table, pre, annotator.device)
        if seeds is not None and seeds[i] is not None:
            torch.manual_seed(seeds[i])
        probs, rels = annotator.predict_on_device(images) if len(index) else (None, None)
        if queued is not None:
            yield _fetch(*queued)
        queued = (index, failures, probs, rels)
    if queued is not None:
        yield _fetch(*queued)


def _fetch(index: torch.Tensor, failures: list[tuple[int, str]], probs: torch.Tensor | None,
           rels: torch.Tensor | None, detections: np.ndarray | None = None) -> BatchResult:
    return BatchResult(index, failures, None if probs is None else probs.float().cpu(),
                       None if rels is None else rels.float().cpu(), detections)


def detect_loader_results(table: FaceTable, batches: Sequence[list[int]], annotator: Any, settings: DetectorSettings,
                          workers: int, seeds: Sequence[int | None] | None = None) -> Iterator[BatchResult]:
    """``geometry: detect`` through a DataLoader: each worker (or this process, ``workers=0``) decodes, detects and
    warps whole batches with its own CPU detector; inference here (MC-dropout re-seeded per shard, as above)."""
    loader = DataLoader(DetectBatches(table, annotator.preprocessor, settings), batch_size=None,
                        sampler=list(batches), num_workers=workers, pin_memory=annotator.device.type == "cuda")
    for i, batch in enumerate(loader):
        if seeds is not None and seeds[i] is not None:
            torch.manual_seed(seeds[i])
        yield _infer(annotator, batch)


def gpu_detect_results(table: FaceTable, batches: Sequence[list[int]], annotator: Any, settings: DetectorSettings,
                       workers: int, seeds: Sequence[int | None] | None = None) -> Iterator[BatchResult]:
    """``geometry: detect`` on the device: workers decode, the detector, the warp and the model run on
    ``annotator.device``; as in ``gpu_results`` the next batch is prepared while the device computes."""
    detector = shared_detector(settings, annotator.device)
    loader = DataLoader(DetectBatches(table, annotator.preprocessor, settings, decode_only=True), batch_size=None,
                        sampler=list(batches), num_workers=workers)
    queued = None
    for i, batch in enumerate(loader):
        images, index, failures, dets = device_detected_batch(batch, annotator.preprocessor, detector,
                                                              annotator.device)
        if seeds is not None and seeds[i] is not None:
            torch.manual_seed(seeds[i])
        probs, rels = annotator.predict_on_device(images) if len(index) else (None, None)
        if queued is not None:
            yield _fetch(*queued)
        queued = (index, failures, probs, rels, dets)
    if queued is not None:
        yield _fetch(*queued)


__all__ = ["BatchResult", "loader_results", "thread_results", "gpu_results", "detect_loader_results",
           "gpu_detect_results"]
