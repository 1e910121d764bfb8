"""``python -m facemac.compare`` (conf/compare.yaml): runs side by side from their folders."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from facemac.settings.base import Section


class CompareSettings(Section):
    """The top-level keys of compare.yaml (the tool has no section of its own)."""

    runs: Union[list[str], str] = []
    latest: Optional[int] = Field(None, ge=1)
    stage: Optional[Literal["train", "annotate", "analyze"]] = None
    baseline: Optional[str] = None
    top_k: int = Field(10, ge=1)
