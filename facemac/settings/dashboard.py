"""``dashboard.*`` (conf/dashboard.yaml): the W&B workspace and report as code."""

from __future__ import annotations

from typing import Optional

from facemac.settings.base import Section


class DashboardSettings(Section):
    entity: Optional[str] = None
    project: str = "facemac"
    workspace_name: str = "facemac"
    report_title: Optional[str] = None
    dry_run: bool = False
    sweep_params: Optional[list[str]] = None
    datasets: Optional[list[str]] = None
