"""Batch decode and warp on the device: nvJPEG through torchvision, OpenCV's warpAffine as affine_grid + grid_sample.

On a GPU the model outruns any number of CPU decode workers (H200, resnet18 @112: 33k img/s model only, 8k end to
end with 14 workers decoding). So the GPU path moves the per-pixel work to the device: workers read bytes and work out
each image's warp matrix from its header (and landmarks); here JPEG batches are decoded by nvJPEG and warped in one
``grid_sample`` call per stored size.

The warp reproduces ``cv2.warpAffine(img, m, (s, s), INTER_LINEAR, BORDER_REPLICATE)`` (pixel centres at integer
coordinates, ``m`` maps source to destination): OpenCV interpolates in fixed point (1/32 pixel positions, 11-bit
weights), this in float, so pixels agree within a few grey levels (tests/test_gpu_batch.py states the tolerance).
A DCT-reduced decode (``data.reduced_decode``) is approximated by an f x f box average before the warp.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from facemac.data.decode import check_encoded, header_shape, verify_jpeg
from facemac.data.preprocess import Preprocessor
from facemac.data.table import FaceTable
from facemac.errors import DataError


def _pixel_to_unit(h: int, w: int) -> np.ndarray:
    """3x3 map from pixel coordinates (centres at integers) to grid_sample's [-1, 1] (align_corners=False)."""
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def theta_from_matrix(m: np.ndarray, src_hw: tuple[int, int], size: int) -> np.ndarray:
    """affine_grid's theta (output unit coords → input unit coords) for OpenCV's source→destination matrix ``m``."""
    m3 = np.vstack([np.asarray(m, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m3)  # destination pixel → source pixel, what warpAffine evaluates per output pixel
    theta = _pixel_to_unit(*src_hw) @ inv @ np.linalg.inv(_pixel_to_unit(size, size))
    return theta[:2].astype(np.float32)


def box_reduce(images: torch.Tensor, factor: int) -> torch.Tensor:
    """[N,C,H,W] → [N,C,ceil(H/f),ceil(W/f)] by f x f averages (the edge blocks average the pixels they hold): what
    libjpeg's 1/f DCT scaling approximates."""
    if factor <= 1:
        return images
    return F.avg_pool2d(images, factor, stride=factor, ceil_mode=True, count_include_pad=False)


def warp_batch(images: torch.Tensor, matrices: Sequence[np.ndarray] | np.ndarray, size: int,
               reduce: int = 1) -> torch.Tensor:
    """uint8 or float [N,C,H,W] images of one stored size + N OpenCV matrices (source→destination, in pixels of the
    image decoded at 1/``reduce`` scale) → uint8 [N,C,size,size], bilinear with replicated borders."""
    x = images.float()
    x = box_reduce(x, reduce)
    h, w = x.shape[-2:]
    theta = torch.from_numpy(np.stack([theta_from_matrix(m, (h, w), size) for m in matrices])).to(x.device)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def decode_jpegs(datas: Sequence[np.ndarray | bytes], device: torch.device) -> list[torch.Tensor | None]:
    """JPEG bytes → uint8 [3,H,W] RGB tensors on ``device`` (nvJPEG on CUDA, one batched call); None for each file
    the decoder refuses (the batch call has no partial results, so a refused batch is retried one file at a time)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]  # a writable copy each
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision 0.29 deprecates its decoders in favour of torchcodec
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            out: list[torch.Tensor | None] = []
            for t in tensors:
                try:
                    out.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
                except RuntimeError:
                    out.append(None)
            return out




class EncodedItems(Dataset):
    """Worker side of the GPU path: a JPEG's bytes and warp plan (after the cheap checks, and a strict 1/8-scale
    verification of its scan data when ``verify``), decoded pixels for everything else (the CPU path), or a reason."""

    def __init__(self, table: FaceTable, preprocess: Preprocessor, verify: bool = True):
        self.table = table
        self.preprocess = preprocess
        self.verify = verify

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict[str, Any]:
        key = self.table.keys[i]
        lm = self.table.landmarks[i] if self.table.landmarks is not None else None
        try:
            data = self.table.source.read(key)
            if data[:2] == b"\xff\xd8" and self.preprocess.align == "arcface":
                check_encoded(data, key)
                if self.verify:
                    verify_jpeg(data, key)
                shape = header_shape(data)
                if shape is not None and min(shape) > 0:
                    m, f = self.preprocess.warp_plan(shape if lm is None else None, lm)
                    return {"index": i, "ok": True, "jpeg": np.frombuffer(data, dtype=np.uint8), "matrix": m,
                            "reduce": f}
            img = self.preprocess.load(data, key, lm)
            return {"index": i, "ok": True, "image": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)}
        except (OSError, DataError) as e:
            return {"index": i, "ok": False, "reason": getattr(e, "reason", None) or f"{type(e).__name__}: {e}"}


def collate_encoded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Readable samples as a list (decoded on the device later), unreadable ones as (index, reason)."""
    return {"items": [s for s in samples if s["ok"]],
            "failures": [(s["index"], s["reason"]) for s in samples if not s["ok"]]}


def device_batch(batch: dict[str, Any], table: FaceTable, preprocess: Preprocessor,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]]]:
    """A collated EncodedItems batch → (uint8 [N,3,S,S] on ``device``, row indices [N], failures): JPEGs decoded in
    one batched call and warped per stored size in one grid_sample each; a JPEG the device decoder refuses goes
    through the CPU path, which decodes it or lists it."""
    items, failures = batch["items"], list(batch["failures"])
    s = preprocess.size
    faces: list[torch.Tensor | None] = [None] * len(items)
    jpegs = [j for j, it in enumerate(items) if "jpeg" in it]
    groups: dict[tuple[int, int, int], list[int]] = {}
    for j, img in zip(jpegs, decode_jpegs([items[j]["jpeg"] for j in jpegs], device) if jpegs else []):
        it = items[j]
        if img is None:  # nvJPEG refused it: libjpeg on the CPU decides (pixels, or a listed failure)
            key = table.keys[it["index"]]
            lm = table.landmarks[it["index"]] if table.landmarks is not None else None
            try:
                faces[j] = torch.from_numpy(preprocess.load(it["jpeg"].tobytes(), key, lm)).permute(2, 0, 1)
            except (OSError, DataError) as e:
                failures.append((it["index"], getattr(e, "reason", None) or str(e)))
            continue
        if it["matrix"] is None and tuple(img.shape[-2:]) == (s, s):
            faces[j] = img
        elif it["matrix"] is None:  # header and decoder disagree about the size: the CPU geometry step decides
            faces[j] = torch.from_numpy(preprocess(img.permute(1, 2, 0).cpu().numpy(), None)).permute(2, 0, 1)
        else:
            it["decoded"] = img
            groups.setdefault((*img.shape[-2:], it["reduce"]), []).append(j)
    for (_, _, f), members in groups.items():
        warped = warp_batch(torch.stack([items[j].pop("decoded") for j in members]),
                            [items[j]["matrix"] for j in members], s, f)
        for j, face in zip(members, warped):
            faces[j] = face
    for j, it in enumerate(items):
        if "image" in it:
            faces[j] = it["image"]
    keep = [j for j, f in enumerate(faces) if f is not None]
    index = torch.tensor([items[j]["index"] for j in keep], dtype=torch.long)
    if not keep:
        return torch.empty(0, 3, s, s, dtype=torch.uint8, device=device), index, failures
    return torch.stack([faces[j].to(device, non_blocking=True) for j in keep]), index, failures


__all__ = ["warp_batch", "theta_from_matrix", "box_reduce", "decode_jpegs", "EncodedItems", "collate_encoded",
           "device_batch"]
