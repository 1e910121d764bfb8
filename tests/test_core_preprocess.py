"""Preprocessor: the similarity warp lands landmarks on the ArcFace template; resize keeps the whole crop."""

import cv2
import numpy as np
import pytest

from facemac.data.decode import decode_image
from facemac.data.preprocess import ARCFACE_TEMPLATE_112, Preprocessor, similarity_transform
from facemac.errors import ConfigError, DataError


def test_similarity_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(12.0), 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE_112.astype(np.float64)
    dst = src @ (scale * rot).T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-5)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-4)


def test_arcface_warp_moves_a_marked_eye_onto_the_template():
    # A 218x178 loose image whose left eye sits at (70, 100): after the warp to 64 px it must sit on the template.
    img = np.zeros((218, 178, 3), np.uint8)
    lm = ARCFACE_TEMPLATE_112 * 1.3 + np.array([17.0, 33.0], np.float32)
    x, y = np.round(lm[0]).astype(int)
    img[y - 2:y + 3, x - 2:x + 3] = 255
    out = Preprocessor("arcface", 64)(img, lm)
    assert out.shape == (64, 64, 3)
    ys, xs = np.nonzero(out[..., 0] > 128)
    expect = ARCFACE_TEMPLATE_112[0] * 64 / 112
    assert abs(xs.mean() - expect[0]) < 1.0 and abs(ys.mean() - expect[1]) < 1.0


def test_aligned_crop_is_warped_like_a_photo_whose_landmarks_are_the_template():
    """A stored 112 crop goes through the landmark path's resampling (what CelebA-trained models saw): the
    template-to-template similarity is a pure scale, checked against a hand-written matrix and OpenCV's warp."""
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    pre = Preprocessor("arcface", 64)
    by_hand = cv2.warpAffine(crop, np.array([[64 / 112, 0, 0], [0, 64 / 112, 0]], np.float32), (64, 64),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = pre(crop, None)
    assert out.shape == (64, 64, 3)
    np.testing.assert_array_equal(out, by_hand)
    np.testing.assert_allclose(similarity_transform(ARCFACE_TEMPLATE_112, pre.template), pre.crop_matrix(112, 112),
                               atol=1e-5)  # = the fit a photo whose landmarks are the template would get
    ok, jpeg = cv2.imencode(".jpg", crop)
    np.testing.assert_array_equal(pre.load(jpeg.tobytes(), "x.jpg"), pre(decode_image(jpeg.tobytes()), None))
    # a 224 crop of the same face lands on the same template, and a crop already at the input size is untouched
    big = np.zeros((224, 224, 3), np.uint8)
    x, y = np.round(ARCFACE_TEMPLATE_112[0] * 2).astype(int)
    big[y - 3:y + 4, x - 3:x + 4] = 255
    ys, xs = np.nonzero(pre(big, None)[..., 0] > 128)
    expect = ARCFACE_TEMPLATE_112[0] * 64 / 112
    assert abs(xs.mean() - expect[0]) < 1.0 and abs(ys.mean() - expect[1]) < 1.0
    np.testing.assert_array_equal(Preprocessor("arcface", 112)(crop, None), crop)


def test_resize_policy_and_bad_policy():
    out = Preprocessor("resize", 56)(np.zeros((112, 100, 3), np.uint8), None)
    assert out.shape == (56, 56, 3)
    with pytest.raises(ConfigError, match="align"):
        Preprocessor("squash", 64)


def test_geometry_mismatch_is_reported_not_resized():
    Preprocessor("arcface", 64).check_geometry("arcface_112", False, "bupt")
    Preprocessor("arcface", 64).check_geometry("loose", True, "celeba")
    with pytest.raises(DataError, match="bupt"):
        Preprocessor("arcface", 64).check_geometry("loose", False, "bupt")
    with pytest.raises(DataError, match="crop"):
        Preprocessor("resize", 64).check_geometry("arcface_112", False, "casia")
