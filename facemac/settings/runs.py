"""One schema per command: the top-level keys it owns. Stage ownership (which stage an override or an experiment's
key belongs to) is read from these classes, not from a second list (facemac/stage.py, facemac/pipeline.py)."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from pydantic import Field

from facemac.settings.analyze import AnalyzeSettings, Inputs
from facemac.settings.annotate import AnnotateSettings
from facemac.settings.audit import AuditSettings
from facemac.settings.augment import AugmentSettings
from facemac.settings.base import Section
from facemac.settings.compare import CompareSettings
from facemac.settings.dashboard import DashboardSettings
from facemac.settings.data import DataSettings
from facemac.settings.dataset import DatasetSettings, TargetSettings
from facemac.settings.demo import DemoSettings
from facemac.settings.logger import LoggerSettings
from facemac.settings.model import ModelSettings
from facemac.settings.optim import OptimSettings, SchedSettings
from facemac.settings.paths import PathsSettings
from facemac.settings.train import TrainSettings


class RunSettings(Section):
    """What every stage run has: its name, seed, tags, paths and tracker. ``groups``: config groups a command line
    may choose for this command that are not keys (``experiment=``, ``hydra/…``)."""

    groups: ClassVar[tuple[str, ...]] = ("experiment", "launcher", "local", "hydra")
    common: ClassVar[tuple[str, ...]] = ("task_name", "seed", "tags", "paths", "logger")

    task_name: str
    seed: int = 0
    tags: list[str] = []
    paths: PathsSettings = PathsSettings()
    logger: LoggerSettings = LoggerSettings()

    def record(self) -> dict[str, Any]:
        """The run's one record: ``<run>/config.yaml``, the W&B run config (plain, resolved values)."""
        return self.plain()


class TrainRun(RunSettings):
    groups: ClassVar[tuple[str, ...]] = (*RunSettings.groups, "hparams_search")

    roots: dict[str, Optional[str]] = {}  # machine-local data roots (conf/local/default.yaml)
    demo: DemoSettings = DemoSettings()
    dataset: DatasetSettings = DatasetSettings()
    model: ModelSettings = ModelSettings()
    optim: OptimSettings = Field(default_factory=lambda: OptimSettings(_target_="torch.optim.AdamW"))  # lazy: torch
    sched: Optional[SchedSettings] = None
    augment: AugmentSettings = AugmentSettings()
    data: DataSettings = DataSettings()
    train: TrainSettings = TrainSettings()


class AnnotateRun(RunSettings):
    roots: dict[str, Optional[str]] = {}
    demo: DemoSettings = DemoSettings()
    ckpt: str = "latest"
    targets: Optional[dict[str, TargetSettings]] = None
    annotate: AnnotateSettings = AnnotateSettings()


class AnalyzeRun(RunSettings):
    annotations: Optional[str] = "latest"
    inputs: Inputs = None
    analyze: AnalyzeSettings = AnalyzeSettings()


class CompareRun(RunSettings, CompareSettings):
    """compare.yaml's keys sit at the top level; compare never tracks (``logger=`` is accepted, and ignored)."""

    groups: ClassVar[tuple[str, ...]] = ("launcher", "local", "hydra")


class DashboardRun(RunSettings):
    group: Optional[str] = None
    publish: Optional[str] = None
    dashboard: DashboardSettings = DashboardSettings()
    targets: Optional[dict[str, TargetSettings]] = None  # names the per-dataset panels


class AuditRun(RunSettings):
    """``python -m facemac.audit``: a tool run through the stage skeleton, not a pipeline stage."""

    annotations: Optional[str] = "latest"
    audit: AuditSettings = AuditSettings()


SCHEMAS: dict[str, type[RunSettings]] = {"train": TrainRun, "annotate": AnnotateRun, "analyze": AnalyzeRun,
                                         "compare": CompareRun, "dashboard": DashboardRun, "audit": AuditRun}
STAGES = ("train", "annotate", "analyze")
