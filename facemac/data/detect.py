"""Face detection with 5 landmarks for unaligned photos (``geometry: detect``): MTCNN from facenet-pytorch.

Why MTCNN from ``facenet-pytorch==2.5.3``: its wheel ships the three networks (``facenet_pytorch/data/{pnet,rnet,
onet}.pt``, 2 MB), so nothing is downloaded at run time; it is plain torch (CPU and CUDA, batched) and gives the five
points the ArcFace warp needs (eyes, nose, mouth corners: the points VGGFace2's ``bb_landmark`` files hold, made by
the same network). 2.6.0 pins torch < 2.3, hence the exact pin.

Batching: MTCNN's image pyramid runs on a stack of equal-size images, so a batch is cut into groups by size bucket:
each image (shrunk first when its longer side exceeds ``max_side``) is padded at the right and bottom to the next
multiple of ``BUCKET`` pixels, and every bucket goes through the pyramid in one call. Padding never moves a pixel, so
the landmarks need no correction beyond undoing the shrink.

Several faces: the one with the largest ``area - 2 * |box centre - image centre|^2`` is kept (insightface's rule
for picking the main face: large and central); how many faces were found is recorded beside it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from facemac.annotation_table import DETECT_FIELDS  # the detection stored per row; the contract owns the order
from facemac.errors import ConfigError

__all__ = ["DETECT_FIELDS", "DetectorSettings", "Detections", "FaceDetector", "detector_settings_from", "pick_face",
           "shared_detector"]
BUCKET = 32  # pad to multiples of this many pixels so differently sized photos share a pyramid call
DETECTOR_NAME = "mtcnn (facenet-pytorch 2.5.3)"
NO_FACE = "no face detected"


@dataclass(frozen=True)
class DetectorSettings:
    """How faces are found: MTCNN's smallest face and stage thresholds, and the size photos are shrunk to first."""

    min_face: int = 20  # pixels at detection resolution (MTCNN's min_face_size)
    max_side: int = 640  # photos with a longer side are shrunk to it for detection (landmarks scaled back)
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-net face probabilities (MTCNN's defaults)
    min_score: float = 0.9  # a face counts (and can be picked) from this final probability on

    def __post_init__(self) -> None:
        if int(self.min_face) < 8:
            raise ConfigError(f"detect.min_face={self.min_face}: use at least 8 pixels")
        if int(self.max_side) < 64:
            raise ConfigError(f"detect.max_side={self.max_side}: use at least 64 pixels")
        if not 0.0 <= float(self.min_score) < 1.0:
            raise ConfigError(f"detect.min_score={self.min_score}: use a probability in [0, 1)")


def detector_settings_from(section: dict | None, key: str) -> DetectorSettings:
    """DetectorSettings from a config section's plain dict (``min_face``, ``max_side``, ``min_score``); ``key`` names
    it in errors (``annotate.detect``, ``data.detect``)."""
    d = dict(section or {})
    unknown = sorted(set(d) - {"min_face", "max_side", "min_score"})
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)}; valid: min_face, max_side, min_score")
    base = DetectorSettings()
    try:
        return DetectorSettings(min_face=int(d.get("min_face", base.min_face)),
                                max_side=int(d.get("max_side", base.max_side)),
                                min_score=float(d.get("min_score", base.min_score)))
    except ConfigError as e:
        raise ConfigError(str(e).replace("detect.", f"{key}.", 1)) from None


@dataclass
class Detections:
    """One row per image: ``found`` False where no face reached ``min_score``; the rest float32 in image pixels."""

    found: np.ndarray  # bool [N]
    boxes: np.ndarray  # float32 [N, 4] x0, y0, x1, y1 of the picked face
    scores: np.ndarray  # float32 [N]
    faces: np.ndarray  # int32 [N] faces with score >= min_score
    landmarks: np.ndarray  # float32 [N, 5, 2]

    @classmethod
    def empty(cls, n: int) -> Detections:
        return cls(np.zeros(n, bool), np.zeros((n, 4), np.float32), np.zeros(n, np.float32), np.zeros(n, np.int32),
                   np.zeros((n, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.found)

    def rows(self) -> np.ndarray:
        """float32 [N, len(DETECT_FIELDS)]: the columns stored with each annotation."""
        return np.concatenate([self.boxes, self.scores[:, None], self.faces[:, None].astype(np.float32),
                               self.landmarks.reshape(-1, 10)], axis=1).astype(np.float32)

    def take(self, rows: Sequence[int]) -> Detections:
        rows = np.asarray(rows, dtype=np.int64)
        return Detections(self.found[rows], self.boxes[rows], self.scores[rows], self.faces[rows],
                          self.landmarks[rows])


def pick_face(boxes: np.ndarray, scores: np.ndarray, height: int, width: int) -> int:
    """Index of the main face: largest ``area - 2 * squared offset of the box centre from the image centre``."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 - width / 2, (boxes[:, 1] + boxes[:, 3]) / 2 - height / 2
    return int(np.argmax(area - 2.0 * (cx * cx + cy * cy)))


def _load_mtcnn():
    try:
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
    except ImportError:
        raise ConfigError("geometry: detect needs the face detector, a dependency of facemac: pip install "
                          "'facenet-pytorch==2.5.3' (its wheel holds the MTCNN weights)") from None
    return PNet(), RNet(), ONet()


class FaceDetector:
    """Batched MTCNN on ``device``: ``detect(images)`` → one picked face (or none) per image."""

    def __init__(self, settings: DetectorSettings | None = None, device: torch.device | str = "cpu"):
        self.settings = settings or DetectorSettings()
        self.device = torch.device(device)
        pnet, rnet, onet = _load_mtcnn()
        self.nets = [n.eval().to(self.device) for n in (pnet, rnet, onet)]

    def __reduce__(self):  # DataLoader workers rebuild it from the settings (the weights come from the wheel)
        return (FaceDetector, (self.settings, str(self.device)))

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray | torch.Tensor]) -> Detections:
        """uint8 H x W x 3 RGB images (numpy, or torch on this device) of any sizes → Detections in their pixels."""
        out = Detections.empty(len(images))
        groups: dict[tuple[int, int], list[tuple[int, float]]] = {}
        shrunk: list[np.ndarray | torch.Tensor] = []
        for i, img in enumerate(images):
            small, scale = self._shrink(img)
            shrunk.append(small)
            h, w = small.shape[:2]
            groups.setdefault((-(-h // BUCKET) * BUCKET, -(-w // BUCKET) * BUCKET), []).append((i, scale))
        for (bh, bw), members in groups.items():
            batch = self._padded([shrunk[i] for i, _ in members], bh, bw)
            boxes, points = self._run(batch)
            for (i, scale), b, p in zip(members, boxes, points):
                self._pick(out, i, b, p, scale, images[i].shape[0], images[i].shape[1])
        return out

    def _shrink(self, img: np.ndarray | torch.Tensor) -> tuple[np.ndarray | torch.Tensor, float]:
        """(image with its longer side at most max_side, factor from detection pixels back to image pixels)."""
        h, w = img.shape[:2]
        longest = max(h, w)
        if longest <= self.settings.max_side:
            return img, 1.0
        f = self.settings.max_side / longest
        size = (max(1, round(w * f)), max(1, round(h * f)))
        if isinstance(img, torch.Tensor):
            x = img.permute(2, 0, 1)[None].float()
            small = torch.nn.functional.interpolate(x, size=(size[1], size[0]), mode="area")
            return small[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8), longest / self.settings.max_side
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA), w / size[0]

    def _padded(self, imgs: list, bh: int, bw: int) -> torch.Tensor:
        """Equal-size NHWC uint8 stack on the device, each image at the top left of a zero canvas."""
        batch = torch.zeros((len(imgs), bh, bw, 3), dtype=torch.uint8, device=self.device)
        for k, img in enumerate(imgs):
            t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
            batch[k, :t.shape[0], :t.shape[1]] = t.to(self.device, non_blocking=True)
        return batch

    def _run(self, batch: torch.Tensor) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """facenet-pytorch's MTCNN cascade on one equal-size stack: per image [K, 5] boxes+scores, [K, 5, 2] points."""
        from facenet_pytorch.models.utils.detect_face import detect_face

        s = self.settings
        pnet, rnet, onet = self.nets
        try:
            boxes, points = detect_face(batch, s.min_face, pnet, rnet, onet, list(s.thresholds), 0.709, self.device)
        except RuntimeError:  # facenet's cascade fails on a stage left with only degenerate boxes: image by image
            if len(batch) == 1:
                return [np.zeros((0, 5))], [np.zeros((0, 5, 2))]
            pairs = [self._run(batch[k:k + 1]) for k in range(len(batch))]
            return [b[0] for b, _ in pairs], [p[0] for _, p in pairs]
        return list(boxes), list(points)

    def _pick(self, out: Detections, i: int, boxes: np.ndarray, points: np.ndarray, scale: float,
              height: int, width: int) -> None:
        if len(boxes) == 0:
            return
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
        keep = boxes[:, 4] >= self.settings.min_score
        if not keep.any():
            return
        boxes, points = boxes[keep], points[keep]
        j = pick_face(boxes[:, :4] * scale, boxes[:, 4], height, width)
        out.found[i] = True
        out.boxes[i] = boxes[j, :4] * scale
        out.scores[i] = boxes[j, 4]
        out.faces[i] = len(boxes)
        out.landmarks[i] = points[j] * scale


_DETECTORS: dict[tuple[DetectorSettings, str], FaceDetector] = {}
_DETECTORS_LOCK = threading.Lock()


def shared_detector(settings: DetectorSettings, device: torch.device | str = "cpu") -> FaceDetector:
    """One detector per (settings, device) in a process: inference threads and repeated calls share the weights."""
    key = (settings, str(torch.device(device)))
    with _DETECTORS_LOCK:
        if key not in _DETECTORS:
            _DETECTORS[key] = FaceDetector(settings, device)
        return _DETECTORS[key]
