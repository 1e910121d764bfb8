"""The identity analysis' outputs: CSVs, figure, and the report.md section in sentences: which identity-level attributes drift in a synthetic set and
which image-level attributes vary less than in real data, each with its identity-bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facemac.analysis.identity import IdentityTables
from facemac.analysis.plots import plot_identity


def _pct(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.1%}" if abs(x) < 0.1 else f"{x:.0%}"


def _points(x: float) -> str:
    """A difference of shares in percentage points."""
    return f"{100 * x:+.1f}" if abs(x) < 0.1 else f"{100 * x:+.0f}"


def _finding(r, p: str, q: str, verb: str, level: float) -> str:
    """'In q, 12% of identities change `Male` between their images; p: 1.0% (+11 points, 95% interval +8 to +14).'"""
    ci = (f", {level:.0%} interval {_points(r.mixed_ci_low)} to {_points(r.mixed_ci_high)}"
          if np.isfinite(r.mixed_ci_low) and np.isfinite(r.mixed_ci_high) else "")
    return (f"  - In {q}, {_pct(r.mixed_share_q)} of identities {verb} `{r.attribute}` between their images; "
            f"{p}: {_pct(r.mixed_share_p)} ({_points(r.mixed_share_q_minus_p)} points{ci}).")


def _findings(rows: pd.DataFrame, sign: int, top_k: int, with_ci: bool) -> pd.DataFrame:
    """Rows whose q - p difference has ``sign`` (+1: q mixes more, -1: less), beyond the interval when there is one,
    largest first."""
    diff = sign * rows["mixed_share_q_minus_p"]
    clear = (rows["mixed_ci_low"] > 0) if sign > 0 else (rows["mixed_ci_high"] < 0)
    hit = rows[clear] if with_ci else rows[diff > 0]
    return hit.assign(_d=sign * hit["mixed_share_q_minus_p"]).sort_values("_d", ascending=False).head(top_k)


def _pair_lines(p: str, q: str, rows: pd.DataFrame, top_k: int, level: float, with_ci: bool) -> list[str]:
    beyond = "beyond its interval" if with_ci else "(no bootstrap: point estimates)"
    lines = [f"### {p} vs {q}", ""]
    drift = _findings(rows[rows.level == "identity"], +1, top_k, with_ci)
    lines.append(f"- Identity drift (identity-level attributes that mix more in {q} than in {p}, {beyond}):"
                 + ("" if len(drift) else " none."))
    lines += [_finding(r, p, q, "change", level) for r in drift.itertuples()]
    flat = _findings(rows[rows.level == "image"], -1, top_k, with_ci)
    lines.append(f"- Too little variation (image-level attributes that mix less in {q} than in {p}, {beyond}):"
                 + ("" if len(flat) else " none."))
    lines += [_finding(r, p, q, "vary", level) for r in flat.itertuples()]
    other = pd.concat([_findings(rows[rows.level == "identity"], -1, top_k, with_ci),
                       _findings(rows[rows.level == "image"], +1, top_k, with_ci)])
    if len(other):
        lines.append(f"- The other way round ({q} more consistent on identity-level, or more varied on image-level "
                     f"attributes, than {p}): " + ", ".join(f"`{a}` {_points(d)} points" for a, d in
                                                           zip(other.attribute, other.mixed_share_q_minus_p)) + ".")
    js = rows.sort_values("js_identity_rates", ascending=False).head(top_k)
    lines.append("- Per-identity rate distributions furthest apart (Jensen–Shannon, nats, at most ln 2 = 0.693): "
                 + ", ".join(f"`{a}` {v:.3f}" for a, v in zip(js.attribute, js.js_identity_rates)) + ".")
    lines.append("")
    return lines


def identity_section(tables: IdentityTables, focus: list[tuple[str, str]], group: dict[str, str], top_k: int,
                     level: float, n_boot: int, min_images: int, hidden: set[str] = frozenset()) -> list[str]:
    """Lines of the '## Within identities' section of report.md."""
    lines = ["## Within identities", "",
             f"How each attribute behaves inside an identity (identities with at least {min_images} images). An "
             "identity is *mixed* on an attribute when its images disagree. For identity-level attributes (the "
             "person: sex, hair colour, nose, ...) many mixed identities mean the identities drift; for image-level "
             "ones (expression, accessories, blur, ...) few mixed identities mean too little variation between one "
             "person's photos. Compare with the real data, not with zero: MAC errors and real life (shaving, dye, "
             f"ageing) mix some real identities too. Intervals: {level:.0%} bootstrap over identities"
             + (f" ({n_boot} replicates)." if n_boot else " (off: n_boot=0)."), ""]
    if tables.skipped:
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in tables.skipped.items()) + ".", ""]
    stats = tables.stats[~tables.stats.dataset.isin(list(hidden))]  # a one-member pool repeats its member
    if not len(stats):
        return lines + ["No dataset has identities with enough images.", ""]
    per = stats.groupby("dataset", sort=False).agg(identities=("identities", "max"), images=("images", "max"))
    lines += ["| dataset | identities | images |", "|---|---:|---:|"]
    lines += [f"| {name} | {int(r.identities)} | {int(r.images)} |" for name, r in per.iterrows()]
    lines.append("")
    unclassified = sorted(a for a, v in tables.levels.items() if v == "unclassified")
    if unclassified:
        lines += [f"Unclassified attributes (statistics in the CSV, not read as drift or variation; class them with "
                  f"`analyze.identity.levels`): {', '.join(unclassified)}.", ""]
    pairs = [(p, q) for p, q in focus if group.get(p) == "real" and group.get(q) == "synthetic"]
    compare = tables.compare
    for p, q in pairs:
        rows = compare[(compare.p == p) & (compare.q == q)]
        if len(rows):
            lines += _pair_lines(p, q, rows, top_k, level, with_ci=n_boot > 0)
    if not pairs:
        lines += ["No real/synthetic pair with identities among the inputs.", ""]
    return lines


@dataclass
class IdentityOutputs:
    """What the identity analysis adds to a run: tables, written files, figures, report lines."""

    tables: IdentityTables
    paths: dict[str, Path]
    figures: list[Path]
    sections: list[str]
    files: list[str]


def write_identity_outputs(output_dir: Path, tables: IdentityTables, focus: list[tuple[str, str]],
                           group: dict[str, str], top_k: int, level: float, n_boot: int,
                           min_images: int, hidden: set[str] = frozenset()) -> IdentityOutputs:
    """identity_stats.csv, identity_compare.csv (header only when no dataset has identities), the figure and the
    report section."""
    paths = {"identity_stats": output_dir / "identity_stats.csv", "identity_compare": output_dir / "identity_compare.csv"}
    tables.stats.to_csv(paths["identity_stats"], index=False)
    tables.compare.to_csv(paths["identity_compare"], index=False)
    figures = []
    shown = tables.stats[~tables.stats.dataset.isin(list(hidden))]  # ``hidden``: pools equal to their one member
    if len(shown):
        (output_dir / "figures").mkdir(parents=True, exist_ok=True)
        figures.append(plot_identity(shown, output_dir / "figures" / "identity_mixed.png"))
    files = ["- `identity_stats.csv`: dataset, group, attribute, level, identities, images, mixed_share, mean_entropy "
             "(bits), ci_low, ci_high (mixed share), entropy_ci_low, entropy_ci_high, share_none … share_all",
             "- `identity_compare.csv`: p, q, attribute, level, mixed shares and mean entropies with q − p differences "
             "and intervals, js_identity_rates (JS between the per-identity rate categories, nats) with interval",
             "- `figures/identity_mixed.png`: share of mixed identities per dataset, identity-level beside image-level"]
    sections = identity_section(tables, focus, group, top_k, level, n_boot, min_images, hidden)
    return IdentityOutputs(tables=tables, paths=paths, figures=figures, sections=sections, files=files)
