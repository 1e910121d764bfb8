"""The detector on real photographs (scikit-image's astronaut and LFW patches) and on loose demo faces.

Reference landmarks of the astronaut come from the detector itself on the untransformed photo (no hand labels): each
transformed copy (scale, shift, rotation, padding, flip) must be found with the transformed points. An ArcFace crop
warped from those points must be re-detected where the warp put them. The demo faces' truth is what the renderer drew.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("facenet_pytorch")
skdata = pytest.importorskip("skimage.data")

from facemac.data.demo.loose import write_loose_target  # noqa: E402
from facemac.data.detect import DetectorSettings, FaceDetector, pick_face  # noqa: E402
from facemac.data.preprocess import ARCFACE_TEMPLATE_112, similarity_transform  # noqa: E402


def _err(points: np.ndarray, truth: np.ndarray) -> float:
    """Mean point distance in eye distances of the truth."""
    return float(np.linalg.norm(points - truth, axis=1).mean() / np.linalg.norm(truth[1] - truth[0]))


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut(detector):
    img = skdata.astronaut()
    found = detector.detect([img])
    assert found.found[0] and found.faces[0] == 1
    return img, found.landmarks[0].astype(np.float64)


def test_transformed_copies_of_a_real_photo_are_found_with_the_transformed_points(detector, astronaut):
    img, ref = astronaut
    cases = [("scale 0.5", [[0.5, 0, 0], [0, 0.5, 0]], (256, 256)),
             ("scale 1.6", [[1.6, 0, -100], [0, 1.6, -40]], (700, 700)),
             ("shift", [[1, 0, 150], [0, 1, 90]], (700, 760)),
             ("rotate 12", cv2.getRotationMatrix2D((225, 120), 12, 1.0), (512, 512)),
             ("rotate -20, scale 0.8", cv2.getRotationMatrix2D((225, 120), -20, 0.8), (512, 512)),
             ("pad to 640x900", [[1, 0, 60], [0, 1, 200]], (900, 640)),
             ("shrink 1500 px (max_side)", [[3, 0, 0], [0, 3, 0]], (1500, 1400))]
    images, truths = [], []
    for _, m, (h, w) in cases:
        m = np.asarray(m, np.float64)
        images.append(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                     borderValue=(30, 30, 30)))
        truths.append(_apply(m, ref))
    flipped = img[:, ::-1].copy()  # a mirror swaps left and right: eyes and mouth corners trade places
    t = ref.copy()
    t[:, 0] = img.shape[1] - 1 - t[:, 0]
    images.append(flipped)
    truths.append(t[[1, 0, 2, 4, 3]])
    found = detector.detect(images)  # one call: sizes are bucketed, the 1500 px photo is shrunk to detect
    errors = {name: _err(found.landmarks[k], truths[k]) for k, (name, *_) in enumerate(cases + [("flip",)])}
    assert found.found.all() and (found.faces == 1).all()
    assert max(errors.values()) < 0.08, errors  # measured 0.014-0.047


def test_an_aligned_crop_is_redetected_where_the_warp_put_the_points(detector, astronaut):
    img, ref = astronaut
    for size in (112, 256):
        m = similarity_transform(ref, ARCFACE_TEMPLATE_112 * size / 112)
        crop = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        found = detector.detect([crop])
        assert found.found[0]
        assert _err(found.landmarks[0], _apply(m.astype(np.float64), ref)) < 0.06
        # and near the template: a 5-point similarity fits a real face only up to its shape (~0.14 here)
        assert _err(found.landmarks[0], ARCFACE_TEMPLATE_112 * size / 112) < 0.2


def test_lfw_patches_are_found_and_the_non_faces_are_not(detector):
    patches = (skdata.lfw_subset() * 255).astype(np.uint8)  # 100 faces, then 100 non-face patches, 25x25 grey
    up = [cv2.cvtColor(cv2.resize(p, (100, 100), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB) for p in patches]
    found = detector.detect(up)
    assert found.found[:100].mean() >= 0.95  # measured 1.00
    assert found.found[100:].mean() <= 0.02  # measured 0.00


def test_several_faces_keep_the_largest_most_central_and_count_them(detector, astronaut):
    img, ref = astronaut
    canvas = np.full((700, 900, 3), 40, np.uint8)
    canvas[100:612, 200:712] = img
    small = cv2.resize(img, (200, 200), interpolation=cv2.INTER_AREA)
    canvas[480:680, 20:220] = small
    found = detector.detect([canvas])
    assert found.faces[0] == 2
    assert _err(found.landmarks[0], ref + [200, 100]) < 0.08
    boxes = np.array([[10, 10, 60, 60], [400, 300, 500, 400], [0, 0, 300, 300]], float)
    assert pick_face(boxes, np.ones(3), 700, 900) == 1  # central beats a larger box in the corner
    assert pick_face(boxes[[0, 2]], np.ones(2), 300, 300) == 1


def test_a_batch_gives_what_each_image_gives_alone(detector, astronaut):
    img, _ = astronaut
    images = [img, cv2.resize(img, (300, 220)), np.zeros((60, 90, 3), np.uint8), img[50:300, 100:400].copy()]
    together = detector.detect(images)
    alone = [detector.detect([im]) for im in images]
    assert list(together.found) == [a.found[0] for a in alone] == [True, True, False, True]
    for k, a in enumerate(alone):
        np.testing.assert_allclose(together.landmarks[k], a.landmarks[0], atol=1e-3)
        np.testing.assert_allclose(together.boxes[k], a.boxes[0], atol=1e-3)


def test_detector_settings_are_checked():
    with pytest.raises(Exception, match="detect.min_face"):
        DetectorSettings(min_face=2)
    with pytest.raises(Exception, match="detect.max_side"):
        DetectorSettings(max_side=10)


@pytest.mark.parametrize("layout", ["celeba", "assorted"])
def test_loose_demo_faces_are_found_with_their_drawn_landmarks(detector, tmp_path, layout):
    target = write_loose_target(tmp_path / layout, identities=12, images=4, layout=layout, progress=False)
    truth = pd.read_csv(target.landmarks)
    images = [cv2.cvtColor(cv2.imread(str(target.root / f"{n}.jpg")), cv2.COLOR_BGR2RGB) for n in truth["NAME_ID"]]
    found = detector.detect(images)
    t = truth.iloc[:, 1:].to_numpy(float).reshape(-1, 5, 2)
    errors = [_err(found.landmarks[k], t[k]) for k in range(len(t)) if found.found[k]]
    assert found.found.mean() >= 0.9, found.found.mean()  # measured 0.97-1.00 on 32-48 faces
    assert np.median(errors) < 0.12, np.median(errors)  # measured 0.07-0.08
