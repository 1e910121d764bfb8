"""Bring a stored image to the model's input geometry in one OpenCV warp or resize.

Alignment matters more than the backbone: a MAC trained on one crop and applied to another measures the crop. The
policy (``align``) and the input size are recorded in every checkpoint, and annotation rebuilds this same
Preprocessor from it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facemac.data.decode import decode_image, header_shape
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError

# insightface's 5-point ArcFace template for 112x112 crops: left eye, right eye, nose tip, left and right mouth corner.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
ALIGN_POLICIES = ("arcface", "resize")
# insightface's 112x112 ArcFace template is SphereFace's 112x96 (height x width) template moved 8 px to the right.
SPHEREFACE_SHIFT = 8.0
SPHEREFACE_ASPECT = 96.0 / 112.0  # width / height of a SphereFace-style crop
# A 1/f DCT-scaled decode is used when the geometry step then enlarges by at most this much (f * scale <= this).
REDUCE_SLACK = 1.1


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src→dst points (Umeyama 1991); 2x3 matrix.

    In 2-D Umeyama's SVD solution has a closed form (rotation+scale as one complex factor a + ib), 10x cheaper per
    image than the SVD, which matters when every training image is warped.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = float((s_c * s_c).sum())
    a = float((s_c[:, 0] * d_c[:, 0] + s_c[:, 1] * d_c[:, 1]).sum()) / var_s
    b = float((s_c[:, 0] * d_c[:, 1] - s_c[:, 1] * d_c[:, 0]).sum()) / var_s
    rs = np.array([[a, -b], [b, a]])
    shift = mu_d - rs @ mu_s
    return np.hstack([rs, shift[:, None]]).astype(np.float32)


def aligned_shape_kind(height: int, width: int, tol: float = 0.01) -> str | None:
    """"square" or "sphereface" (112x96-style) for the shapes an ArcFace-aligned crop is stored in, else None."""
    if height <= 0 or width <= 0:
        return None
    if abs(width / height - 1.0) <= tol:
        return "square"
    if abs(width / height - SPHEREFACE_ASPECT) <= tol:
        return "sphereface"
    return None


def aligned_template(height: int, width: int) -> np.ndarray:
    """Where the 5 points sit in a stored aligned crop of ``height`` x ``width``: the ArcFace template scaled to a
    square crop; SphereFace's layout (the template 8 px to the left, scaled by height / 112) for a 112x96-style one;
    for any other shape the template stretched to it (what ``crop_matrix`` then undoes; the pixel check refuses it)."""
    kind = aligned_shape_kind(height, width)
    if kind == "square":
        return ARCFACE_TEMPLATE_112 * np.float32(width / 112.0)
    if kind == "sphereface":
        return (ARCFACE_TEMPLATE_112 - np.float32([SPHEREFACE_SHIFT, 0.0])) * np.float32(height / 112.0)
    return ARCFACE_TEMPLATE_112 * np.float32([width / 112.0, height / 112.0])


def preprocess_record(pre: "Preprocessor") -> dict:
    """What annotation's manifest records of the model's crop (``preprocess``), so the faces it saw can be redrawn
    later (facemac.faces) without the checkpoint: ``Preprocessor.from_data_cfg`` reads it back."""
    return {"align": pre.align, "input_size": [3, pre.size, pre.size], "reduced_decode": pre.reduced_decode}


class Preprocessor:
    """Stored image (HxWx3 uint8) → input_size x input_size x 3 uint8 in the policy's geometry."""

    def __init__(self, align: str, input_size: int, reduced_decode: bool = False):
        if align not in ALIGN_POLICIES:
            raise ConfigError(f"data align={align!r} is unknown; choose one of {', '.join(ALIGN_POLICIES)}")
        self.align = align
        self.size = int(input_size)
        self.template = ARCFACE_TEMPLATE_112 * (self.size / 112.0)
        self.reduced_decode = bool(reduced_decode)

    @classmethod
    def from_data_cfg(cls, data_cfg: dict) -> Preprocessor:
        """The Preprocessor a checkpoint's ``data_cfg`` records (what training used, so annotation matches it)."""
        return cls(data_cfg["align"], int(data_cfg["input_size"][-1]),
                   reduced_decode=bool(data_cfg.get("reduced_decode", False)))

    @staticmethod
    def _factor(scale: float) -> int:
        """Largest libjpeg reduction (8, 4, 2) after which the warp enlarges by at most REDUCE_SLACK, else 1."""
        for f in (8, 4, 2):
            if f * scale <= REDUCE_SLACK:
                return f
        return 1

    def crop_matrix(self, height: int, width: int) -> np.ndarray:
        """Warp of a stored ArcFace-aligned crop of ``height`` x ``width``: the scale that takes the template at the
        crop's size onto the template at the input size (for square crops, the similarity a landmark fit would give).

        Aligned crops thus go through the same resampling as photos warped by their landmarks, so a MAC trained on
        landmark-warped faces (CelebA) annotates aligned crops (BUPT, DCFace, ...) the way it saw its training faces.
        A SphereFace-style 112x96 crop is scaled by its height and moved 8/112 of the size right (its template's
        place in the 112x112 one), not stretched."""
        if aligned_shape_kind(height, width) == "sphereface":
            k = self.size / height
            return np.array([[k, 0.0, SPHEREFACE_SHIFT * self.size / 112.0], [0.0, k, 0.0]], dtype=np.float32)
        return np.array([[self.size / width, 0.0, 0.0], [0.0, self.size / height, 0.0]], dtype=np.float32)

    def table_face(self, table: FaceTable, i: int) -> np.ndarray:
        """Row ``i`` of ``table`` as the model's input: read, decode, geometry. The one code path that annotation and
        training (FaceDataset.face) and the redraw for people (facemac.faces.crops, which needs no torch) share."""
        key = table.keys[i]
        lm = table.landmarks[i] if table.landmarks is not None else None
        return self.load(table.source.read(key), key, lm)  # decode + geometry (maybe reduced)

    def load(self, data: bytes, key: str, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Encoded bytes → model input, decoding at 1/2, 1/4 or 1/8 scale when ``reduced_decode`` and the geometry
        step shrinks that much anyway (e.g. CelebA 178x218 → 64 px): the warp matrix is adapted, not the output."""
        s = self.size
        if self.align == "arcface":
            m, f = self.warp_plan(header_shape(data) if landmarks is None else None, landmarks)
            if m is None:  # a stored aligned crop of unknown size (not JPEG/PNG) or already at the input size
                return self(decode_image(data, key), None)
            return self._warp(decode_image(data, key, f), m)
        f = 1
        if self.reduced_decode:
            shape = header_shape(data)
            if shape is not None and min(shape) > 0:
                f = self._factor(max(s / shape[0], s / shape[1]))
        return self(decode_image(data, key, f), None)

    def warp_plan(self, shape: tuple[int, int] | None, landmarks: np.ndarray | None) -> tuple[np.ndarray | None, int]:
        """``align=arcface``: (the warp matrix for the image decoded at 1/f scale, f), from the stored image's
        (height, width) or its landmarks; (None, 1) when there is nothing to warp (a crop already at the input size)
        or the size is unknown. The CPU path (``load``) and the GPU batch path (facemac.data.gpu_batch) share it."""
        if landmarks is None:
            if shape is None or min(shape) <= 0 or tuple(shape) == (self.size, self.size):
                return None, 1
            m = self.crop_matrix(*shape)
        else:
            m = similarity_transform(landmarks, self.template)
        f = self._factor(math.hypot(float(m[0, 0]), float(m[1, 0]))) if self.reduced_decode else 1
        if f > 1:  # reduced pixel x_r sits at f * x_r + (f - 1) / 2 in the full image
            m = np.hstack([m[:, :2] * f, (m[:, 2] + m[:, :2].sum(1) * (f - 1) / 2)[:, None]]).astype(np.float32)
        return m, f

    def check_geometry(self, geometry: str, has_landmarks: bool, name: str) -> None:
        """Refuse a dataset whose declared crop cannot be brought to this policy's geometry (the declaration only:
        facemac.data.pixel_check then looks at the pixels)."""
        if self.align == "arcface" and geometry not in ("arcface_112", "detect") and not has_landmarks:
            raise DataError(f"dataset {name!r} stores {geometry!r} crops without landmarks, but the model expects "
                            "ArcFace-aligned faces; set its geometry: detect (a face detector finds and aligns them), "
                            "give a landmarks: file (VGGFace2 bb_landmark CSV), or store aligned 112x112 crops")
        if self.align == "resize" and geometry == "detect":
            raise DataError(f"dataset {name!r} is to be face-detected and aligned (geometry: detect) but the model "
                            "was trained on whole loose images (align=resize); declare its real geometry instead")
        if self.align == "resize" and geometry == "arcface_112":
            raise DataError(f"dataset {name!r} stores ArcFace-aligned crops but the model was trained on whole "
                            "loose images (align=resize); its rates would measure the crop, not the faces")

    def __call__(self, img: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Decoded image (+ its landmarks) → model input; ``align=arcface`` without landmarks = a stored aligned crop."""
        s = self.size
        if self.align == "arcface":
            if landmarks is not None:
                return self._warp(img, similarity_transform(landmarks, self.template))
            return img if img.shape[:2] == (s, s) else self._warp(img, self.crop_matrix(*img.shape[:2]))
        if img.shape[0] == s and img.shape[1] == s:
            return img
        interp = cv2.INTER_AREA if img.shape[0] > s else cv2.INTER_LINEAR
        return cv2.resize(img, (s, s), interpolation=interp)

    def _warp(self, img: np.ndarray, m: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(img, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
