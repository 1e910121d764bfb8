"""``model.*`` (conf/model/): the timm backbone of the MAC and where its starting weights come from."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from pydantic import Field

from facemac.settings.base import Section


class ModelSettings(Section):
    """``weight_source`` is decided, not configured: the stage's preflight records where the weights came from."""

    unlisted: ClassVar[frozenset[str]] = frozenset({"weight_source", "kwargs"})  # decided; an optional timm extra

    name: Optional[str] = None
    timm_name: str = ""
    input_size: int = Field(224, ge=8)
    pretrained: bool = False
    weights: Optional[str] = None   # a local state dict or a facemac best.pt; wins over pretrained
    drop_rate: float = Field(0.0, ge=0, lt=1)
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    kwargs: Optional[dict[str, Any]] = None  # more timm.create_model arguments
    weight_source: Optional[dict[str, Any]] = None  # resolved: {kind, ...} of the weights the run started from
