"""``audit.*`` (conf/audit.yaml): ``python -m facemac.audit``, an audit sample per annotated dataset."""

from __future__ import annotations

from typing import Optional, Union

from pydantic import Field

from facemac.settings.base import Section


class AuditSettings(Section):
    """The sample (size, strata) and the labelling page it is shown on (docs/audit.md)."""

    size: int = Field(300, ge=1)
    datasets: Union[list[str], str, None] = None
    rare_attributes: int = Field(4, ge=0)
    face_size: int = Field(160, ge=16)
    jpeg_quality: int = Field(92, ge=1, le=100)
    roots: Optional[dict[str, str]] = None  # {dataset: folder}, when its images moved since annotation
