"""``demo.*`` (conf/demo/default.yaml): size knobs of the procedural demo faces (train's and annotate's)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from facemac.settings.base import Section


class DemoSettings(Section):
    """Passed as ``ensure_demo(cache_dir, **demo)``; any change gives a new cache folder."""

    seed: int = 0
    celeba_identities: int = Field(1500, ge=1)
    celeba_images_per_identity: int = Field(8, ge=1)
    target_identities: int = Field(250, ge=1)
    target_images_per_identity: int = Field(8, ge=1)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    workers: Optional[int] = Field(None, ge=1)
