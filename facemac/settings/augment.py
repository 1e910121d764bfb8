"""``augment.*`` (conf/augment/): light, attribute-safe augmentation on uint8 faces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from facemac.settings.base import Section


class AffineSettings(Section):
    p: float = Field(0.5, ge=0, le=1)
    scale: tuple[float, float] = (0.95, 1.05)
    translate: float = Field(0.03, ge=0, le=0.5)
    rotate: float = Field(5, ge=0, le=180)


class ColorSettings(Section):
    p: float = Field(0.5, ge=0, le=1)
    brightness: float = Field(0.15, ge=0)
    contrast: float = Field(0.15, ge=0)
    saturation: float = Field(0.1, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)


class BlurSettings(Section):
    p: float = Field(0.0, ge=0, le=1)
    max_kernel: int = Field(3, ge=1)


class AugmentSettings(Section):
    """``enabled: false`` (augment=none): no pipeline at all."""

    enabled: bool = True
    backend: Literal["fast", "albumentations"] = "fast"
    hflip: float = Field(0.5, ge=0, le=1)
    affine: AffineSettings = AffineSettings()
    color: ColorSettings = ColorSettings()
    blur: BlurSettings = BlurSettings()
