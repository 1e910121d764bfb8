"""Check a sample of a dataset's pixels against its declared geometry before any face is annotated.

A declaration is a promise the user makes: ``geometry: arcface_112`` (the folder default) says every image is a face
already warped to the ArcFace template. Loose photos under that declaration are warped template-to-template and
annotated as if aligned: the rates then measure the crop. So, cheaply (seconds per dataset):

1. **Sizes, from the headers** of up to ``images`` sampled files: aligned crops are square (112, 128, 256, ...) or
   SphereFace's 112x96. A sample where more than ``max_odd_shapes`` of the images have another shape (CelebA's
   178x218, VGGFace2's assorted sizes) is refused without decoding anything.
2. **Landmarks, from the detector** on up to ``faces`` of them when the sizes are plausible: where the detector finds
   the eyes, nose and mouth against where the declared geometry puts them, in eye distances of the declared points.
   A median error above ``max_error`` is refused. Tables with landmarks (``loose``, ``landmarks:`` files) are checked
   the same way against their own points, so a landmarks file for other images (or other sizes) is caught. The
   error is the displacement of the crop (the similarity between expected and detected points), not the points'
   scatter, so a face's own shape does not count.

With too few faces found (cartoons, tiny crops) step 2 cannot decide and says so in the log: only evidence refuses.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from facemac.data.decode import decode_image, header_shape
from facemac.data.preprocess import aligned_shape_kind, aligned_template
from facemac.data.table import FaceTable
from facemac.errors import DataError

log = logging.getLogger(__name__)

# A median displacement above this share of the eye distance is another crop. The displacement is how far the
# 5-point similarity that takes the expected points onto the detected ones moves the expected points: the crop's own
# scale, shift and rotation, without the face's shape (a similarity fits a real face's points only up to its shape:
# 0.14 eye distances on the astronaut's ArcFace crop, while its displacement is 0.03-0.04). Measured: aligned demo
# targets 0.04-0.06 (upscaled to 256 px 0.09-0.11); an FFHQ-style crop 0.21, CelebA loose crops squeezed or cut to a
# square 0.20-0.25, loose square photos 0.43.
MAX_ERROR = 0.15
MIN_FACES = 5  # fewer found faces than this decide nothing


class GeometryMismatchError(DataError):
    """A dataset's pixels are not what its geometry declares."""


@dataclass(frozen=True)
class PixelCheckSettings:
    """How much of each dataset is looked at, and what counts as a mismatch."""

    enabled: bool = True
    images: int = 200  # headers read
    faces: int = 24  # of those, decoded and run through the detector
    max_error: float = MAX_ERROR
    max_odd_shapes: float = 0.1  # share of sampled headers allowed a shape no aligned crop has
    seed: int = 0


@dataclass
class PixelReport:
    """What the check saw in one dataset (logged; ``problem`` is the refusal, None when it passed)."""

    dataset: str
    geometry: str
    headers: int = 0
    shapes: collections.Counter = field(default_factory=collections.Counter)
    faces_tried: int = 0
    faces_found: int = 0
    median_error: float | None = None
    seconds: float = 0.0
    problem: str | None = None
    note: str = ""

    def summary(self) -> str:
        common = ", ".join(f"{w}x{h} x{n}" for (h, w), n in self.shapes.most_common(3))
        err = "n/a" if self.median_error is None else f"{self.median_error:.3f}"
        return (f"pixel check {self.dataset} (geometry {self.geometry}): {self.headers} headers ({common}), detector "
                f"found {self.faces_found}/{self.faces_tried} faces, median displacement {err} eye distances, "
                f"{self.seconds:.1f} s{'; ' + self.note if self.note else ''}")


def _fix(key: str) -> str:
    return (f"set {key}.geometry=detect (a face detector finds and aligns each face), give {key}.landmarks=<csv> "
            "(VGGFace2 bb_landmark format), or declare the geometry the images have")


def _sample(n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, n])
    return np.sort(rng.choice(n, size=min(n, k), replace=False))


def _shape_problem(report: PixelReport, settings: PixelCheckSettings) -> str | None:
    odd = {hw: c for hw, c in report.shapes.items() if aligned_shape_kind(*hw) is None}
    n_odd = sum(odd.values())
    if not report.headers or n_odd <= settings.max_odd_shapes * report.headers:
        return None
    examples = ", ".join(f"{w}x{h}" for (h, w), _ in collections.Counter(odd).most_common(4))
    what = (f"{len(report.shapes)} different sizes" if len(report.shapes) > 3 else "a size")
    return (f"dataset {report.dataset!r} declares geometry {report.geometry!r} (faces already aligned to the ArcFace "
            f"template, square or 112x96), but {n_odd} of {report.headers} sampled images have {what} no aligned "
            f"crop has ({examples}): they look like loose photos")


def _displacement(points: np.ndarray, expected: np.ndarray) -> float:
    """How far the similarity fitted from ``expected`` onto ``points`` moves ``expected``, in its eye distances."""
    from facemac.data.preprocess import similarity_transform

    m = similarity_transform(expected, points).astype(np.float64)
    moved = expected @ m[:, :2].T + m[:, 2]
    iod = float(np.linalg.norm(expected[1] - expected[0]))
    return float(np.linalg.norm(moved - expected, axis=1).mean() / max(iod, 1e-6))


def check_pixels(table: FaceTable, settings: PixelCheckSettings, detector_factory,
                 key: str | None = None) -> PixelReport:
    """Look at a sample of ``table``'s images; raise GeometryMismatchError naming the dataset, what was found and the
    fix (``key``: the config entry to change, default ``targets.<name>``). ``detector_factory()`` gives a
    facemac.data.detect.FaceDetector (built only when step 2 runs)."""
    t0 = time.perf_counter()
    report = PixelReport(table.name, table.geometry)
    has_landmarks = table.landmarks is not None
    if table.geometry == "detect" or (table.geometry != "arcface_112" and not has_landmarks):
        report.note = "nothing declared to check" if table.geometry == "detect" else "no landmarks"
        return report
    rows = _sample(len(table), settings.images, settings.seed)
    datas: dict[int, bytes] = {}
    for i in rows:
        try:
            data = table.source.read(table.keys[i])
        except OSError:
            continue
        shape = header_shape(data)
        if shape is None or min(shape) <= 0:
            continue
        report.headers += 1
        report.shapes[tuple(shape)] += 1
        datas[int(i)] = data
    if not has_landmarks:
        report.problem = _shape_problem(report, settings)
    if report.problem is None:
        _landmark_check(table, report, settings, datas, detector_factory)
    report.seconds = time.perf_counter() - t0
    log.info("%s", report.summary())
    if report.problem is not None:
        raise GeometryMismatchError(f"{report.problem}; {_fix(key or f'targets.{table.name}')}")
    return report


def _landmark_check(table: FaceTable, report: PixelReport, settings: PixelCheckSettings, datas: dict[int, bytes],
                    detector_factory) -> None:
    """Step 2: detected points against the declared template (or the table's own landmarks)."""
    has_landmarks = table.landmarks is not None
    candidates = [i for i, d in datas.items() if has_landmarks or aligned_shape_kind(*header_shape(d)) is not None]
    picked = candidates[:: max(1, len(candidates) // max(1, settings.faces))][: settings.faces]
    images, expected = [], []
    for i in picked:
        try:
            img = decode_image(datas[i], table.keys[i])
        except DataError:
            continue
        if not has_landmarks:  # detect at 112 px height: MTCNN's pyramid is steadiest there on tight crops (the demo
            h, w = img.shape[:2]  # faces at 128 or 256 px scatter twice as much), and the geometry is the same
            img = cv2.resize(img, (max(1, round(w * 112 / h)), 112),
                             interpolation=cv2.INTER_AREA if h > 112 else cv2.INTER_LINEAR)
        images.append(img)
        expected.append(table.landmarks[i] if has_landmarks else aligned_template(*img.shape[:2]))
    report.faces_tried = len(images)
    if not images:
        return
    found = detector_factory().detect(images)
    errors = [_displacement(found.landmarks[k], expected[k]) for k in range(len(images)) if found.found[k]]
    report.faces_found = len(errors)
    if len(errors) < MIN_FACES:
        report.note = f"too few faces found to compare landmarks (< {MIN_FACES}): the sizes alone passed"
        return
    report.median_error = float(np.median(errors))
    if report.median_error <= settings.max_error:
        return
    if has_landmarks:
        report.problem = (f"dataset {table.name!r}: its landmarks sit a median {report.median_error:.2f} eye distances "
                          f"off where the face detector finds the faces ({len(errors)} of {len(images)} sampled "
                          "images): the landmarks file does not belong to these images (or to their size)")
    else:
        report.problem = (f"dataset {table.name!r} declares geometry {table.geometry!r}, but the face detector finds "
                          f"the face a median {report.median_error:.2f} eye distances off the ArcFace template "
                          f"(scale, shift, rotation) ({len(errors)} of {len(images)} sampled images; aligned crops sit "
                          f"within {settings.max_error}): they are not aligned crops")
