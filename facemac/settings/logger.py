"""``logger.*`` (conf/logger/): tracking off (``logger=none``) or W&B."""

from __future__ import annotations

from typing import Literal, Optional

from facemac.settings.base import Section


class LoggerSettings(Section):
    """W&B's project/entity/group/name; ``name`` null: the stage names the run (model, dataset, swept values)."""

    backend: Literal["none", "wandb"] = "none"
    project: str = "facemac"
    entity: Optional[str] = None
    group: Optional[str] = None
    name: Optional[str] = None
    tags: list[str] = []
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
