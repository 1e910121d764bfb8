"""``analyze.*``, ``annotations`` and ``inputs`` (conf/analyze.yaml): what to compare and how."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field

from facemac.settings.base import Section


class IdentitySettings(Section):
    """Within-identity statistics (identity_stats.csv, identity_compare.csv)."""

    enabled: bool = True
    min_images: int = Field(2, ge=2)
    levels: Optional[dict[str, Literal["identity", "image"]]] = None


class ExamplesSettings(Section):
    """The faces behind the numbers: strips per driver attribute, gallery pages, W&B tables (analysis/examples.py)."""

    enabled: bool = True
    attributes: int = Field(6, ge=0)
    per_row: int = Field(8, ge=1)
    size: int = Field(112, ge=1, le=256)
    gallery: bool = True
    gallery_per_attribute: int = Field(8, ge=1)
    roots: Optional[dict[str, str]] = None  # {dataset: folder of its images}, when not at the manifest's root
    audit_faces: int = Field(300, ge=0)


class AnalyzeSettings(Section):
    groups: Optional[dict[str, Literal["real", "synthetic"]]] = None
    attributes: Optional[list[str]] = None
    joint_attributes: Optional[list[str]] = None
    mode: Literal["hard", "soft"] = "hard"
    alpha: float = Field(0.5, ge=0)
    ci_level: float = Field(0.95, gt=0, lt=1)
    n_boot: int = Field(200, ge=0)
    min_reliability: Optional[float] = Field(None, ge=0, le=1)
    pooled: bool = True
    top_k: int = Field(5, ge=1)
    label_rule: Literal["counting", "reporting"] = "counting"
    allow_mixed_checkpoints: bool = False
    audit: Union[str, dict[str, str], None] = None  # a folder of <dataset>.csv audits, or {dataset: csv}
    correction: Literal["auto", "audit", "validation", "none"] = "auto"  # analysis/correction/choose.py
    audit_power_tuning: bool = True  # the variance-minimising lambda of the audited estimate; false: plain PPI
    simulate_audit: int = Field(0, ge=0)  # pipeline only: faces per target audited from its ground truth
    rows_per_batch: int = Field(65536, ge=1)
    identity: IdentitySettings = IdentitySettings()
    examples: ExamplesSettings = ExamplesSettings()


Inputs = Any  # a path, `latest`, an artifact ref, {path, name, group}, or a list of those (analysis/inputs.py)
