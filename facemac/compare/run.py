"""``python -m facemac.compare``: collect runs, compare them per stage, write comparison.md/.csv and figures."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from facemac.compare import figures as F
from facemac.compare.report import write_comparison
from facemac.compare.runs import STAGES, Run, collect
from facemac.compare.tables import compare_analyze, compare_annotate, compare_train
from facemac.errors import ConfigError
from facemac.runs import mark_done
from facemac.settings import CompareRun, build_settings

log = logging.getLogger(__name__)


def _entries(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _baseline(runs: list[Run], wanted) -> Run | None:
    """The analysis run the others are measured against: ``baseline=<folder>`` or the first analysis run."""
    analyses = [r for r in runs if r.stage == "analyze"]
    if wanted in (None, ""):
        return analyses[0] if analyses else None
    want = Path(str(wanted)).expanduser().resolve()
    for r in analyses:
        if r.path.resolve() == want or r.label == str(wanted):
            return r
    raise ConfigError(f"baseline={wanted}: not one of the analysis runs compared ({[r.label for r in analyses]})")


def run(cfg: DictConfig | CompareRun) -> dict[str, Any]:
    """Compare the runs ``cfg`` names (choices and ranges checked by its schema, facemac/settings/compare.py)."""
    s = build_settings(cfg, "compare")
    out = Path(s.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage, latest = s.stage, s.latest
    entries = _entries(s.runs)
    if not entries and not latest:
        raise ConfigError("nothing to compare: pass runs=[<run folder>,<glob>,...] and/or latest=N")
    runs, problems = collect(entries, latest, s.paths.log_dir, stage)
    if not runs:
        where = [f"{p.path}: {p.reason}" for p in problems]
        if latest:
            where.append(f"latest={latest} found no finished {stage or 'train, annotate or analyze'} run under "
                         f"{s.paths.log_dir} (paths.log_dir)")
        raise ConfigError("no finished run to compare: " + "; ".join(where))
    by_stage = {s: [r for r in runs if r.stage == s] for s in STAGES}
    top_k = s.top_k
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    figures: dict[str, str] = {}
    rows: list[pd.DataFrame] = []
    train = analysis = annotate = None
    baseline = _baseline(runs, s.baseline)

    if by_stage["train"]:
        train = compare_train(by_stage["train"])
        train.per_attribute.to_csv(out / "train_per_attribute.csv", index=False)
        if not train.per_attribute.empty:
            F.plot_train_heatmap(train.balanced_accuracy(), fig_dir / "train_per_attribute.png")
            figures["train"] = "figures/train_per_attribute.png"
        rows.append(train.summary.rename(columns=lambda c: c if c in train.summary.columns[:5] else f"config:{c}")
                    .assign(stage="train"))
    if by_stage["annotate"]:
        annotate = compare_annotate(by_stage["annotate"])
        annotate.to_csv(out / "annotation_runs.csv", index=False)
        totals = annotate.groupby("run", sort=False).agg(datasets=("dataset", "count"), images=("images", "sum"),
                                                         failures=("failures", "sum"))
        rows.append(totals.assign(stage="annotate"))
    if by_stage["analyze"] and baseline is not None:
        analysis = compare_analyze(by_stage["analyze"], baseline)
        analysis.pairs.to_csv(out / "kl_pairs_side_by_side.csv")
        analysis.differences.to_csv(out / "kl_attribute_differences.csv", index=False)
        for name, d in (analysis.differences.groupby("run", sort=False) if not analysis.differences.empty else []):
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            F.plot_kl_differences(d, name, baseline.label, fig_dir / f"kl_differences_{safe}.png")
            figures[name] = f"figures/kl_differences_{safe}.png"
        n_metrics = len([c for c in analysis.summary.columns if c == "datasets" or c.startswith("kl_mean ")])
        rows.append(analysis.summary.rename(columns=lambda c, n=n_metrics, cols=list(analysis.summary.columns):
                                            c if cols.index(c) < n else f"config:{c}").assign(stage="analyze"))

    table = pd.concat(rows).rename_axis("run").reset_index()
    paths = {r.label: str(r.path) for r in runs}
    table.insert(1, "stage", table.pop("stage"))
    table.insert(2, "path", table["run"].map(paths))
    table.to_csv(out / "comparison.csv", index=False)
    report = write_comparison(out / "comparison.md", runs, problems, baseline=baseline, train=train,
                              annotate=annotate, analysis=analysis, figures=figures, top_k=top_k)
    mark_done(out)
    log.info("compared %d runs (%s)%s: %s", len(runs),
             ", ".join(f"{len(v)} {k}" for k, v in by_stage.items() if v),
             f", {len(problems)} left out" if problems else "", report)
    return {"output_dir": out, "runs": runs, "problems": problems, "table": table, "figures": figures}
