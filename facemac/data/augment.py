"""Training-time augmentation from the `augment:` config: light, attribute-safe albumentations on uint8 images.

Runs after the geometry step (the image is already at the model's input size), so every transform keeps the aligned
crop: small affine jitter with replicated borders, a horizontal flip (no CelebA or MAAD-Face attribute is sided),
mild colour jitter without hue shifts (hair and skin colour are attributes), blur off by default ("Blurry" is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2

from facemac.config import to_plain
from facemac.errors import ConfigError


def _prob(value: Any, key: str) -> float:
    p = float(value or 0.0)
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{key}={value!r} is not a probability in [0, 1]")
    return p


def _affine(cfg: Mapping[str, Any], p: float):
    import albumentations as A

    scale = tuple(cfg.get("scale", (0.95, 1.05)))
    shift = float(cfg.get("translate", 0.03))
    rotate = float(cfg.get("rotate", 5))
    kwargs = dict(scale=scale, translate_percent=(-shift, shift), rotate=(-rotate, rotate), p=p)
    try:
        return A.Affine(border_mode=cv2.BORDER_REPLICATE, **kwargs)
    except TypeError:  # albumentations < 2 names it `mode`
        return A.Affine(mode=cv2.BORDER_REPLICATE, **kwargs)


def build_augment(augment_cfg: Mapping[str, Any] | Any | None, seed: int | None = None):
    """albumentations.Compose for uint8 HxWx3 training images, or None when augmentation is off."""
    cfg = to_plain(augment_cfg) if augment_cfg is not None else {}
    if not cfg or not cfg.get("enabled", True):
        return None
    backend = cfg.get("backend", "albumentations")
    if backend not in ("albumentations", "fast"):
        raise ConfigError(f"augment.backend={backend!r}; choose albumentations or fast")
    if backend == "fast" and not float((cfg.get("color") or {}).get("hue", 0.0) or 0.0):  # fast has no hue jitter
        return _fast(cfg, seed)
    from facemac.extras import ALBUMENTATIONS, require

    require(ALBUMENTATIONS, "augment.backend=albumentations" if backend == "albumentations"
            else "augment.color.hue > 0 (the fast backend has no hue jitter, albumentations does)")
    import albumentations as A

    ops: list[Any] = []
    if (p := _prob(cfg.get("hflip", 0.0), "augment.hflip")) > 0:
        ops.append(A.HorizontalFlip(p=p))
    affine = dict(cfg.get("affine") or {})
    if (p := _prob(affine.get("p", 0.0), "augment.affine.p")) > 0:
        ops.append(_affine(affine, p))
    color = dict(cfg.get("color") or {})
    if (p := _prob(color.get("p", 0.0), "augment.color.p")) > 0:
        ops.append(A.ColorJitter(brightness=float(color.get("brightness", 0.0)),
                                 contrast=float(color.get("contrast", 0.0)),
                                 saturation=float(color.get("saturation", 0.0)),
                                 hue=float(color.get("hue", 0.0)), p=p))
    blur = dict(cfg.get("blur") or {})
    if (p := _prob(blur.get("p", 0.0), "augment.blur.p")) > 0:
        k = int(blur.get("max_kernel", 3))
        if k < 3 or k % 2 == 0:
            raise ConfigError(f"augment.blur.max_kernel={k} must be an odd number >= 3")
        ops.append(A.GaussianBlur(blur_limit=(3, k), p=p))
    if not ops:
        return None
    try:
        return A.Compose(ops, seed=seed) if seed is not None else A.Compose(ops)
    except TypeError:  # albumentations < 1.4.? has no Compose seed
        return A.Compose(ops)


def _fast(cfg: dict[str, Any], seed: int | None):
    """augment.backend=fast: the same transforms in plain OpenCV/NumPy (facemac.data.fast_augment), ~2x cheaper."""
    from facemac.data.fast_augment import FastAugment

    hflip = _prob(cfg.get("hflip", 0.0), "augment.hflip")
    affine, color, blur = (dict(cfg.get(k) or {}) for k in ("affine", "color", "blur"))
    for key, sub in (("affine", affine), ("color", color), ("blur", blur)):
        _prob(sub.get("p", 0.0), f"augment.{key}.p")
    if blur.get("p", 0.0):
        k = int(blur.get("max_kernel", 3))
        if k < 3 or k % 2 == 0:
            raise ConfigError(f"augment.blur.max_kernel={k} must be an odd number >= 3")
    if not (hflip or affine.get("p") or color.get("p") or blur.get("p")):
        return None
    return FastAugment(hflip, affine, color, blur, seed=seed)


def reseed_augment(augment: Any, value: int) -> None:
    """Restart an augmentation's random stream at ``value`` (either backend; None is a no-op).

    Training calls it for every sample with a value made of (epoch, index) (facemac.data.dataset.FaceItems): a face's
    augmentation then depends on the seed, the epoch and the face only, not on the process that draws it, the number
    of workers the CPU probe picked, or a resume."""
    if augment is None:
        return
    if hasattr(augment, "reseed"):
        augment.reseed(value)
    elif hasattr(augment, "set_random_seed"):  # albumentations: any integer (its NumPy and Python generators take it)
        augment.set_random_seed(int(value))

