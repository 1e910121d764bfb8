"""``geometry: detect`` batches: decode a batch of photos, find every face in one batched detector pass, warp each to
the ArcFace template with its 5 points. The same contract as the aligned paths (uint8 NCHW faces, row indices,
failures), plus the detection of every face kept, stored with its annotation so it never runs twice.

* ``load_detected_batch``: CPU, in whichever thread or process prepares the batch (annotation's inference threads,
  DataLoader workers through ``DetectBatches``), the detector on the CPU there.
* ``device_detected_batch``: the GPU path: workers decode (``DetectBatches(decode_only=True)``), the detector and the
  warp run on the device in one call per size bucket, the model right after.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from facemac.data.decode import decode_image
from facemac.data.detect import NO_FACE, DetectorSettings, FaceDetector, shared_detector
from facemac.data.gpu_batch import warp_batch
from facemac.data.preprocess import Preprocessor, similarity_transform
from facemac.data.table import FaceTable
from facemac.errors import DataError


def _reason(e: Exception) -> str:
    return getattr(e, "reason", None) or f"{type(e).__name__}: {e}"


def decode_rows(table: FaceTable, rows: list[int]) -> tuple[list[int], list[np.ndarray], list[tuple[int, str]]]:
    """(rows decoded, their HxWx3 uint8 images at full size, (row, reason) of the unreadable ones)."""
    ok, images, failures = [], [], []
    for i in rows:
        key = table.keys[i]
        try:
            images.append(decode_image(table.source.read(key), key))
            ok.append(i)
        except (OSError, DataError) as e:
            failures.append((i, _reason(e)))
    return ok, images, failures


def load_detected_batch(table: FaceTable, pre: Preprocessor, detector: FaceDetector,
                        rows: list[int]) -> dict[str, Any]:
    """Rows → {"image": uint8 [N,3,S,S] channels-last view, "index", "failures", "detections": float32 [N, 16]}."""
    ok, images, failures = decode_rows(table, rows)
    found = detector.detect(images)
    s = pre.size
    buf = np.empty((len(ok), s, s, 3), dtype=np.uint8)
    kept: list[int] = []
    for k, i in enumerate(ok):
        if not found.found[k]:
            failures.append((i, NO_FACE))
            continue
        buf[len(kept)] = pre(images[k], found.landmarks[k])
        kept.append(k)
    return {"image": torch.from_numpy(buf[:len(kept)]).permute(0, 3, 1, 2),
            "index": torch.tensor([ok[k] for k in kept], dtype=torch.long), "failures": failures,
            "detections": found.take(kept).rows()}


class DetectBatches(Dataset):
    """Item = a whole batch (a list of row indices), for ``DataLoader(batch_size=None, sampler=batches)``: each worker
    detects and warps its batches itself with a detector of its own (the weights load from the wheel in ~50 ms).
    ``decode_only``: the GPU path's worker side, which only decodes."""

    def __init__(self, table: FaceTable, pre: Preprocessor, settings: DetectorSettings, decode_only: bool = False):
        self.table, self.pre, self.settings, self.decode_only = table, pre, settings, decode_only

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, rows: list[int]) -> dict[str, Any]:
        if self.decode_only:
            ok, images, failures = decode_rows(self.table, rows)
            return {"rows": ok, "images": images, "failures": failures}
        return load_detected_batch(self.table, self.pre, shared_detector(self.settings, "cpu"), rows)


def device_detected_batch(batch: dict[str, Any], pre: Preprocessor, detector: FaceDetector,
                          device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]], np.ndarray]:
    """A decoded batch (``DetectBatches(decode_only=True)``) → (uint8 [N,3,S,S] on ``device``, row indices, failures,
    detections [N, 16]): images uploaded once, detected on the device, warped per stored size by one grid_sample."""
    rows, failures = batch["rows"], list(batch["failures"])
    s = pre.size
    on_device = [torch.from_numpy(np.ascontiguousarray(img)).to(device, non_blocking=True) for img in batch["images"]]
    found = detector.detect(on_device)
    kept = [k for k in range(len(rows)) if found.found[k]]
    failures += [(rows[k], NO_FACE) for k in range(len(rows)) if not found.found[k]]
    faces: dict[int, torch.Tensor] = {}
    groups: dict[tuple[int, int], list[int]] = {}
    for k in kept:
        groups.setdefault(tuple(on_device[k].shape[:2]), []).append(k)
    for members in groups.values():
        stack = torch.stack([on_device[k].permute(2, 0, 1) for k in members])
        matrices = [similarity_transform(found.landmarks[k], pre.template) for k in members]
        for k, face in zip(members, warp_batch(stack, matrices, s)):
            faces[k] = face
    index = torch.tensor([rows[k] for k in kept], dtype=torch.long)
    images = (torch.stack([faces[k] for k in kept]) if kept
              else torch.empty(0, 3, s, s, dtype=torch.uint8, device=device))
    return images, index, failures, found.take(kept).rows()


__all__ = ["decode_rows", "load_detected_batch", "DetectBatches", "device_detected_batch"]
