"""Typed, validated, resolved settings: one pydantic schema per config section, one root schema per command.

``build_settings(cfg, "train")`` turns the composed config into a frozen object once (facemac/stage.py does it before
any data work); decisions (``auto`` workers, starting weights, the probe's split) make new objects with
``replace(settings, "data.num_workers", 2)``; ``settings.record()`` is ``<run>/config.yaml`` and the W&B config.
Adding a config key is one field in one module here plus its default in conf/ (docs/config.md, "Adding a key")."""

from facemac.settings.base import Entry, Section, replace, to_plain
from facemac.settings.build import build_settings, common_keys, own_keys, owner_of, plain_config, stage_keys
from facemac.settings.runs import (SCHEMAS, STAGES, AnalyzeRun, AnnotateRun, AuditRun, CompareRun, DashboardRun,
                                   RunSettings, TrainRun)

__all__ = ["Section", "Entry", "replace", "to_plain", "build_settings", "own_keys", "owner_of", "common_keys",
           "stage_keys", "plain_config", "SCHEMAS", "STAGES", "RunSettings", "TrainRun", "AnnotateRun", "AnalyzeRun",
           "CompareRun", "DashboardRun", "AuditRun"]
