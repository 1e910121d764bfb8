"""The keys the stages log, as the dashboard uses them, and which keys a built panel refers to.

Each stage names what it logs in its own ``logged`` module (facemac/training/logged.py, annotation/logged.py,
analysis/logged.py; artifact names in facemac/lineage.py) and logs under those names; the dashboard imports them from
there, so the two never spell a key differently. Panels must name only keys a stage really logs (tests read them from
real offline runs of the three stages) and must show each stage's headline metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facemac.analysis.inputs import GROUPS
from facemac.analysis.logged import FIGURES, KL_ATTRIBUTES, KL_PAIRS, POOLED_SUFFIX, RATES, pooled_kl_key
from facemac.annotation.logged import FACES_TABLE
from facemac.annotation.logged import SUMMARY_TABLE as ANNOTATION_TABLE
from facemac.annotation.logged import dataset_keys
from facemac.lineage import DIVERGENCE_ARTIFACT
from facemac.training.logged import (EPOCH, LR, PER_ATTRIBUTE_BACC, TEST_ACC, TEST_MA, TEST_TABLE, THROUGHPUT,
                                     TRAIN_LOSS, VAL_ACC, VAL_MA)

_REAL, _SYNTHETIC = (f"{g}{POOLED_SUFFIX}" for g in GROUPS)
POOLED_KL = (pooled_kl_key(_REAL, _SYNTHETIC), pooled_kl_key(_SYNTHETIC, _REAL))

# the metric each stage is judged by: the workspace and every report must show it
HEADLINE = {"train": (VAL_MA, TEST_MA), "annotate": (ANNOTATION_TABLE,), "analyze": (KL_PAIRS,)}

__all__ = ["ANNOTATION_TABLE", "DIVERGENCE_ARTIFACT", "EPOCH", "FACES_TABLE", "FIGURES", "HEADLINE", "KL_ATTRIBUTES", "KL_PAIRS",
           "LR", "PER_ATTRIBUTE_BACC", "POOLED_KL", "RATES", "TEST_ACC", "TEST_MA", "TEST_TABLE", "THROUGHPUT",
           "TRAIN_LOSS", "VAL_ACC", "VAL_MA", "Ref", "dataset_keys", "referenced_keys"]


@dataclass(frozen=True)
class Ref:
    """One key a panel refers to: ``kind`` is metric (history/summary), config, regex (over metrics), media, table,
    or artifact (a W&B artifact name)."""

    kind: str
    key: str


_RUN_ATTRIBUTES = {"Step", "_step", "Runtime", "_runtime", "WallTime", "_timestamp", "Group", "JobType", "Name"}


def _metric(x: Any, default: str = "metric") -> Ref | None:
    import wandb_workspaces.reports.v2 as wr

    if x is None:
        return None
    if isinstance(x, wr.Config):
        return Ref("config", x.name)
    if isinstance(x, (wr.SummaryMetric, wr.Metric)):
        x = x.name
    x = str(x)
    if x.startswith("run.") or x in _RUN_ATTRIBUTES:
        return None
    return Ref(default, x)


def _column(col: str) -> Ref | None:
    """Runs-table columns: ``summary:<key>``, ``config:<key>[.value]``, ``run:<attribute>``."""
    section, _, name = col.partition(":")
    if section == "summary":
        return Ref("metric", name)
    if section == "config":
        return Ref("config", name.replace(".value", ""))
    return None


def referenced_keys(obj: Any) -> set[Ref]:
    """Every logged key a workspace, report, section, block or panel refers to. An unknown panel type is an error,
    so a new kind of panel cannot slip past the check that panels name only logged keys."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    out: set[Ref] = set()

    def add(*refs: Ref | None) -> None:
        out.update(r for r in refs if r is not None)

    def visit(o: Any) -> None:
        if isinstance(o, ws.Workspace):
            add(*(_column(c) for c in o.runset_settings.pinned_columns))
            for s in o.sections:
                visit(s)
        elif isinstance(o, ws.Section):
            for p in o.panels:
                visit(p)
        elif isinstance(o, wr.Report):
            for b in o.blocks:
                visit(b)
        elif isinstance(o, wr.PanelGrid):
            for r in o.runsets:
                add(*(_column(c) for c in r.pinned_columns))
            for p in o.panels:
                visit(p)
        elif isinstance(o, wr.LinePlot):
            add(_metric(o.x), *(_metric(y) for y in o.y), Ref("regex", o.metric_regex) if o.metric_regex else None)
        elif isinstance(o, wr.BarPlot):
            add(*(_metric(m) for m in o.metrics))
        elif isinstance(o, wr.ScalarChart):
            add(_metric(o.metric))
        elif isinstance(o, wr.ParallelCoordinatesPlot):
            add(*(_metric(c.metric) for c in o.columns))
        elif isinstance(o, wr.ParameterImportancePlot):
            add(_metric(o.with_respect_to))
        elif isinstance(o, wr.MediaBrowser):
            add(*(Ref("media", k) for k in o.media_keys))
        elif isinstance(o, (wr.WeavePanelSummaryTable, wr.WeaveBlockSummaryTable)):
            add(Ref("table", o.table_name))
        elif isinstance(o, (wr.WeaveBlockArtifact, wr.WeaveBlockArtifactVersionedFile)):
            add(Ref("artifact", o.artifact))
        elif isinstance(o, (wr.H1, wr.H2, wr.H3, wr.P, wr.TableOfContents, wr.MarkdownBlock, wr.MarkdownPanel,
                            wr.HorizontalRule, wr.UnorderedList, wr.OrderedList, wr.CodeBlock)):
            pass
        else:
            raise TypeError(f"referenced_keys: no rule for {type(o).__name__}; add one before using it in a dashboard")

    visit(obj)
    return out
