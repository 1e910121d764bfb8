"""Augmentation pipelines: uint8 in, uint8 out at the same shape; `none` builds nothing; bad values are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from facemac.data.augment import build_augment
from facemac.errors import ConfigError
from tests.conftest import CONF_DIR


def _group(name: str):
    with initialize_config_dir(config_dir=CONF_DIR + "/augment", version_base="1.3"):
        return compose(config_name=name)


def test_default_keeps_uint8_shape_and_changes_pixels():
    aug = build_augment(_group("default"), seed=0)
    assert aug is not None
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    changed = 0
    for _ in range(8):
        out = aug(image=img)["image"]
        assert out.dtype == np.uint8 and out.shape == img.shape
        changed += int(not np.array_equal(out, img))
    assert changed > 0


def test_flip_only_mirrors_exactly():
    aug = build_augment({"hflip": 1.0})
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    np.testing.assert_array_equal(aug(image=img)["image"], img[:, ::-1])


def test_none_and_disabled_give_none():
    assert build_augment(_group("none")) is None
    assert build_augment(None) is None
    assert build_augment({"enabled": False, "hflip": 0.5}) is None


def test_blur_on_and_bad_values():
    aug = build_augment({"blur": {"p": 1.0, "max_kernel": 5}})
    img = np.zeros((32, 32, 3), np.uint8)
    img[16:, :] = 255
    out = aug(image=img)["image"]
    assert out.dtype == np.uint8
    assert 0 < int(out[15, 5, 0]) < 255 and 0 < int(out[16, 5, 0]) < 255  # the edge is smoothed
    with pytest.raises(ConfigError, match=r"augment\.hflip"):
        build_augment({"hflip": 2})
    with pytest.raises(ConfigError, match=r"augment\.blur\.max_kernel"):
        build_augment({"blur": {"p": 0.5, "max_kernel": 4}})
