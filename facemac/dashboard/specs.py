"""The workspace and the group report, as wandb-workspaces objects (pure: no network, no files).

Every runset leaves entity and project empty, so it means the report's own project and nothing is looked up while
the specs are built or serialized (a runset naming its project asks W&B for the project's id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from facemac.dashboard import keys as K


@dataclass
class DashboardTarget:
    """Where the specs go and what they show."""

    entity: str
    project: str
    workspace_name: str = "facemac"
    group: str | None = None
    report_title: str | None = None
    sweep_params: list[str] = field(default_factory=list)  # config keys swept by hparams_search
    datasets: list[str] = field(default_factory=list)  # annotated dataset names for per-dataset panels
    divergence_alias: str | None = None  # the alias the group's divergence artifact carries (tracking.group_alias_of)


def _wide(h: int = 10) -> wr.Layout:
    return wr.Layout(x=0, y=0, w=24, h=h)


def _table(name: str, h: int = 10) -> wr.WeavePanelSummaryTable:
    return wr.WeavePanelSummaryTable(table_name=name, layout=_wide(h))


def _training_panels() -> list:
    return [
        wr.LinePlot(title="training loss", x="Step", y=[K.TRAIN_LOSS]),
        wr.LinePlot(title="learning rate", x="Step", y=[K.LR]),
        wr.LinePlot(title="validation mA and mean accuracy", x=K.EPOCH, y=[K.VAL_MA, K.VAL_ACC]),
        wr.LinePlot(title="per-attribute balanced accuracy (validation; mean ± sd over a group's runs)", x=K.EPOCH,
                    metric_regex=K.PER_ATTRIBUTE_BACC, groupby="Group", groupby_aggfunc="mean",
                    groupby_rangefunc="stddev", layout=_wide(9)),
        wr.LinePlot(title="throughput (images/s)", x="Step", y=[K.THROUGHPUT]),
        wr.BarPlot(title="selected on validation, reported on test", metrics=[K.VAL_MA, K.TEST_MA, K.VAL_ACC,
                                                                                K.TEST_ACC]),
        _table(K.TEST_TABLE),
    ]


def _sweep_panels(params: list[str]) -> list:
    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(p)) for p in params]
    columns.append(wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(K.VAL_MA)))
    return [
        wr.ParallelCoordinatesPlot(title="swept settings → validation mA", columns=columns, layout=_wide(9)),
        wr.ParameterImportancePlot(with_respect_to=K.VAL_MA, layout=wr.Layout(x=0, y=0, w=12, h=9)),
        wr.ScalarChart(title="best validation mA", metric=K.VAL_MA, groupby_aggfunc="max"),
    ]


def _annotation_panels(datasets: list[str]) -> list:
    panels: list = [_table(K.ANNOTATION_TABLE, 7), _table(K.FACES_TABLE, 12)]  # the numbers, then sampled faces
    if datasets:
        images, failures = zip(*(K.dataset_keys(d) for d in datasets))
        panels += [wr.BarPlot(title="images annotated per dataset", metrics=list(images)),
                   wr.BarPlot(title="unreadable images per dataset", metrics=list(failures))]
    return panels


def _analysis_panels() -> list:
    return [
        _table(K.KL_PAIRS),
        wr.BarPlot(title="KL between the pooled groups, both directions (nats)", metrics=list(K.POOLED_KL)),
        wr.MediaBrowser(title="figures", media_keys=list(K.FIGURES), num_columns=3, layout=_wide(12)),
        _table(K.KL_ATTRIBUTES, 12),
        _table(K.RATES, 12),
    ]


def build_workspace(t: DashboardTarget) -> ws.Workspace:
    """The project's saved workspace: one section per stage, plus sweeps."""
    return ws.Workspace(
        entity=t.entity, project=t.project, name=t.workspace_name,
        sections=[
            ws.Section(name="Training (job_type=train)", panels=_training_panels(), is_open=True),
            ws.Section(name="Sweeps (hparams_search: one run per trial, grouped by study)",
                       panels=_sweep_panels(t.sweep_params), is_open=True),
            ws.Section(name="Annotation (job_type=annotate)", panels=_annotation_panels(t.datasets)),
            ws.Section(name="Analysis (job_type=analyze)", panels=_analysis_panels(), is_open=True),
        ],
        runset_settings=ws.RunsetSettings(
            pinned_columns=["run:displayName", f"summary:{K.VAL_MA}", f"summary:{K.TEST_MA}",
                            f"summary:{K.POOLED_KL[0]}"]),
    )


def _runset(group: str, job_type: str) -> wr.Runset:
    return wr.Runset(name=f"{group} · {job_type}",
                     filters=[expr.Metric("Group") == group, expr.Metric("JobType") == job_type])


def report_title(t: DashboardTarget) -> str:
    return (t.report_title or f"{t.group}: attributes of real vs synthetic faces")[:128]


def build_report(t: DashboardTarget) -> wr.Report:
    """A report on one experiment group that reads like the paper: the MAC, the datasets, rates, KL both ways,
    the figures, and the divergence artifact the numbers come from."""
    if not t.group:
        raise ValueError("a report needs a W&B group")
    g = t.group
    alias = t.divergence_alias or g
    blocks = [
        wr.TableOfContents(),
        wr.P([f"The runs of W&B group {g}: a Massive Attribute Classifier (train), the datasets it annotated "
              "(annotate), and the comparison of their attribute distributions (analyze), after Neto et al., "
              "FG 2024. KL divergences are in nats, each Bernoulli smoothed with the pseudo-count alpha recorded in "
              "the analyze run's config and summary."]),
        wr.H1("1. The MAC and its per-attribute quality"),
        wr.P(["Checkpoint selected on validation mA (mean balanced accuracy over attributes), with decision "
              "thresholds tuned on validation; test reported once. The table lists every attribute's test "
              "accuracy, balanced accuracy, F1, AUROC and threshold."]),
        wr.PanelGrid(runsets=[_runset(g, "train")], panels=[
            wr.BarPlot(title="mA and mean accuracy", metrics=[K.VAL_MA, K.TEST_MA, K.VAL_ACC, K.TEST_ACC]),
            wr.LinePlot(title="validation balanced accuracy per attribute", x=K.EPOCH,
                        metric_regex=K.PER_ATTRIBUTE_BACC),
            wr.LinePlot(title="training loss", x="Step", y=[K.TRAIN_LOSS]),
            _table(K.TEST_TABLE, 12)]),
        wr.H1("2. The annotated datasets"),
        wr.P(["Each dataset annotated by that MAC: images, unreadable images, and the share of positives per "
              "attribute with the tuned thresholds."]),
        wr.PanelGrid(runsets=[_runset(g, "annotate")], panels=_annotation_panels(t.datasets)),
        wr.H1("3. Attribute rates per dataset"),
        wr.PanelGrid(runsets=[_runset(g, "analyze")], panels=[
            wr.MediaBrowser(title="rates", media_keys=[K.FIGURES[0]], layout=_wide(12)), _table(K.RATES, 12)]),
        wr.H1("4. KL divergence in both directions"),
        wr.P(["KL(P‖Q) is not KL(Q‖P): every ordered pair of datasets appears in both directions. kl_mean and "
              "kl_sum summarise the per-attribute divergences, kl_joint compares attribute combinations (read it "
              "only where joint_sparse_p and joint_sparse_q are small), coverage is the share of Q's combinations "
              "P also holds; each comes with a bootstrap interval over identities."]),
        wr.PanelGrid(runsets=[_runset(g, "analyze")], panels=[
            _table(K.KL_PAIRS, 12),
            wr.BarPlot(title="pooled groups, both directions (nats)", metrics=list(K.POOLED_KL)),
            wr.MediaBrowser(title="per-attribute KL and its asymmetry", media_keys=list(K.FIGURES[1:]),
                            num_columns=2, layout=_wide(12)),
            _table(K.KL_ATTRIBUTES, 12)]),
        wr.H1("5. Where these numbers come from"),
        wr.P([f"The divergence artifact of this group (alias {alias}) holds the CSV tables, report.md and the "
              "figures; its lineage runs back through the annotation tables to the MAC checkpoint."]),
        wr.WeaveBlockArtifactVersionedFile(entity=t.entity, project=t.project, artifact=K.DIVERGENCE_ARTIFACT,
                                           version=alias, file="report.md"),
        wr.WeaveBlockArtifact(entity=t.entity, project=t.project, artifact=K.DIVERGENCE_ARTIFACT, tab="lineage"),
    ]
    return wr.Report(entity=t.entity, project=t.project, title=report_title(t),
                     description=f"Generated by `python -m facemac.dashboard group={g}`.", blocks=blocks)
