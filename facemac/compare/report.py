"""comparison.md: the tables a person reads, with the figures and what could not be compared."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.compare.runs import Problem, Run
from facemac.compare.tables import AnalysisComparison, TrainComparison, plotted_pairs


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(frame: pd.DataFrame, index: bool = True) -> list[str]:
    """A pipe table (pandas' to_markdown would need tabulate)."""
    f = frame.reset_index() if index else frame
    head = [str(c) for c in f.columns]
    lines = ["| " + " | ".join(_cell(c) for c in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in f.itertuples(index=False)]
    return lines


def _runs_section(runs: list[Run], baseline: Run | None) -> list[str]:
    lines = ["## Runs", "", "| run | stage | folder |", "|---|---|---|"]
    for r in runs:
        mark = " (baseline)" if r is baseline else ""
        lines.append(f"| {r.label}{mark} | {r.stage} | `{r.path}` |")
    return lines + [""]


def _train_section(t: TrainComparison, top_k: int, figure: str | None) -> list[str]:
    lines = ["## Training runs", "",
             "Validation selects the checkpoint, test is reported once; mA = mean balanced accuracy over attributes. "
             + (f"Config keys that differ between the runs: {', '.join(f'`{k}`' for k in t.config_keys)}."
                if t.config_keys else "The runs share every config key."), ""]
    lines += md_table(t.summary.rename_axis("run")) + [""]
    wide = t.balanced_accuracy()
    if wide.shape[1] > 1:
        spread = (wide.max(axis=1) - wide.min(axis=1)).sort_values(ascending=False)
    if wide.shape[1] > 1 and not spread.max() > 0:
        lines += ["The runs' test balanced accuracy is the same on every attribute.", ""]
    elif wide.shape[1] > 1:
        top = wide.loc[spread.index[:top_k]].assign(spread=spread.iloc[:top_k])
        lines += [f"Test balanced accuracy of the {len(top)} attributes the runs disagree on most "
                  "(all attributes: `train_per_attribute.csv`):", ""]
        lines += md_table(top.rename_axis("attribute")) + [""]
    if figure:
        lines += [f"![test balanced accuracy per attribute]({figure})", ""]
    return lines


def _analysis_section(a: AnalysisComparison, baseline: Run, top_k: int, figures: dict[str, str]) -> list[str]:
    lines = ["## Analysis runs", "", "KL divergences in nats; every ordered pair (P, Q) is KL(P‖Q).", ""]
    lines += md_table(a.summary.rename_axis("run")) + [""]
    cols = [c for c in a.pairs.columns if c.endswith(": kl_mean")]
    shown = a.pairs.loc[plotted_pairs(list(a.pairs.index)), cols]
    lines += ["### Pair summaries side by side", "",
              "kl_mean per run, for pairs of datasets and of pooled groups (every pair and column, pooled groups "
              "against their members included: `kl_pairs_side_by_side.csv`).", ""]
    lines += md_table(shown.rename(columns=lambda c: c.removesuffix(": kl_mean"))) + [""]
    if a.differences.empty:
        lines += ["No two analyses share a dataset pair, so there are no per-attribute differences to show.", ""]
    for run, d in (a.differences.groupby("run", sort=False) if not a.differences.empty else []):
        top = d.reindex(d["delta"].abs().sort_values(ascending=False).index[:top_k])
        lines += [f"### {run} against {baseline.label}: per-attribute KL differences", "",
                  f"The {len(top)} largest |Δ| of {len(d)} (pair, attribute) cells; Δ = KL({run}) − "
                  f"KL({baseline.label}); `intervals_overlap` is false where the two bootstrap intervals are "
                  "disjoint. All cells: `kl_attribute_differences.csv`.", ""]
        keep = [c for c in ("p", "q", "attribute", "kl_baseline", "kl", "delta", "intervals_overlap")
                if c in top.columns]
        if not (d["delta"].abs() > 0).any():
            lines += [f"{run} and {baseline.label} agree on every cell.", ""]
        else:
            lines += md_table(top[keep], index=False) + [""]
        if run in figures:
            lines += [f"![KL differences, {run} minus {baseline.label}]({figures[run]})", ""]
    for run in a.no_overlap:
        lines += [f"{run} shares no (P, Q, attribute) with {baseline.label}: different datasets, no differences.", ""]
    return lines


def write_comparison(path: Path, runs: list[Run], problems: list[Problem], *, baseline: Run | None,
                     train: TrainComparison | None, annotate: pd.DataFrame | None,
                     analysis: AnalysisComparison | None, figures: dict[str, str], top_k: int) -> Path:
    lines = ["# Run comparison", "", f"{len(runs)} runs compared"
             + (f", {len(problems)} folders left out (see the end)." if problems else "."), ""]
    lines += _runs_section(runs, baseline)
    if train is not None:
        lines += _train_section(train, top_k, figures.get("train"))
    if annotate is not None and not annotate.empty:
        lines += ["## Annotation runs", ""] + md_table(annotate, index=False) + [""]
    if analysis is not None and baseline is not None:
        lines += _analysis_section(analysis, baseline, top_k, figures)
    if problems:
        lines += ["## Not compared", ""] + [f"- `{p.path}`: {p.reason}" for p in problems] + [""]
    path.write_text("\n".join(lines))
    return path
