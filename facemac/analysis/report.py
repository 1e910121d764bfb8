"""report.md: the numbers a person needs, in sentences: which KL direction is larger and which attributes drive it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facemac.analysis.provenance import describe_dropped
from facemac.analysis.tables import JOINT_MAX_SPARSE, JOINT_MIN_COUNT


@dataclass
class ReportContext:
    """What the report states besides the tables."""

    datasets: list[dict[str, Any]]  # name, group, kind, rows, path, checkpoint_sha256, (labels_of)
    settings: dict[str, Any]  # mode, alpha, n_boot, seed, level, joint_attributes, min_reliability, ...
    pooled: list[str] = field(default_factory=list)
    focus: list[tuple[str, str]] = field(default_factory=list)  # (P, Q) pairs to describe, real first
    top_k: int = 5
    sections: list[str] = field(default_factory=list)  # further markdown lines (e.g. within identities), before Files
    files: list[str] = field(default_factory=list)  # further "- `name`: meaning" lines for the Files list
    aliases: dict[str, str] = field(default_factory=dict)  # one-member pools -> their member (not shown twice)
    headline: str = ""  # the first line under the title (``headline()``), also logged by the stage
    quality: Any = None  # MacQuality (analysis/correction/quality.py): balanced accuracy on validation / audits
    corrections: dict[str, tuple[str, str]] = field(default_factory=dict)  # dataset -> (method, what it assumes)


def _num(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.4f}"


def _ci(row: pd.Series, col: str) -> str:
    lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    if lo is None or hi is None or not np.isfinite(lo) or not np.isfinite(hi):
        return ""
    return f" [{lo:.4f}, {hi:.4f}]"


def _direction(a: str, b: str, x: float, y: float, what: str) -> str:
    """'KL(a||b) = x > KL(b||a) = y (x/y = r)' style sentence."""
    if not (np.isfinite(x) and np.isfinite(y)):
        return f"{what}: KL({a} ‖ {b}) = {_num(x)}, KL({b} ‖ {a}) = {_num(y)} nats."
    if np.isclose(x, y, rtol=1e-9, atol=1e-12):
        return f"{what}: both directions equal ({_num(x)} nats)."
    big, small, bx, sx = (a, b, x, y) if x > y else (b, a, y, x)
    ratio = f"{bx / sx:.2f}×" if sx > 0 else "∞×"
    return (f"{what}: KL({big} ‖ {small}) = {_num(bx)} nats is larger than KL({small} ‖ {big}) = {_num(sx)} nats "
            f"({ratio}).")


def _quality_cells(attr: str, p: str, q: str, quality, members: dict | None = None) -> tuple[str, str, str]:
    """(validation balanced accuracy, audit balanced accuracy of p / q, warning) for one driver attribute; a pooled
    group shows the lowest of its members' audits ("min")."""
    if quality is None:
        return "n/a", "n/a", ""
    v = quality.validation.get(attr)
    val = "n/a" if v is None or not np.isfinite(v) else f"{v:.2f}"
    members = members or {}

    def audited(d: str) -> str:
        own = [quality.audit[m].get(attr, np.nan) for m in members.get(d, [d]) if m in quality.audit]
        own = [x for x in own if np.isfinite(x)]
        if not own:
            return "–"
        return f"{min(own):.2f}" + (" (min)" if d in members and len(own) > 1 else "")

    aud = " / ".join(audited(d) for d in (p, q))
    chance = quality.at_chance(attr, [m for d in (p, q) for m in members.get(d, [d])])
    return val, aud, (f"**classified at chance** ({', '.join(chance)}): not a finding" if chance else "")


def _pair_section(p: str, q: str, pairs: pd.DataFrame, kl_attr: pd.DataFrame, rates: pd.DataFrame,
                  top_k: int, joint_hint: str = "", quality=None, members: dict | None = None) -> list[str]:
    fwd = pairs[(pairs.p == p) & (pairs.q == q)].iloc[0]
    bwd = pairs[(pairs.p == q) & (pairs.q == p)].iloc[0]
    lines = [f"### {p} vs {q}", ""]
    lines.append("- " + _direction(p, q, fwd.kl_mean, bwd.kl_mean, "Mean per-attribute KL"))
    if "kl_mean_ci_low" in pairs:
        lines.append(f"  - bootstrap intervals: KL({p} ‖ {q}){_ci(fwd, 'kl_mean')}, KL({q} ‖ {p}){_ci(bwd, 'kl_mean')}")
    lines.append(f"- Sum over attributes: KL({p} ‖ {q}) = {_num(fwd.kl_sum)}, KL({q} ‖ {p}) = {_num(bwd.kl_sum)} nats.")
    sparse = max(float(fwd.get("joint_sparse_p", np.nan)), float(fwd.get("joint_sparse_q", np.nan)))
    if np.isfinite(sparse) and sparse > JOINT_MAX_SPARSE:
        lines.append(f"- Joint KL over attribute combinations: not estimable from these samples — "
                     f"{fwd.joint_sparse_p:.0%} of {p}'s and {fwd.joint_sparse_q:.0%} of {q}'s images have a "
                     f"combination seen fewer than {JOINT_MIN_COUNT} times in their dataset, so the smoothing, not "
                     f"the data, sets the value (KL({p} ‖ {q}) = {_num(fwd.kl_joint)}, KL({q} ‖ {p}) = "
                     f"{_num(bwd.kl_joint)} nats in kl_pairs.csv) and its bootstrap intervals are biased. "
                     f"{joint_hint}")
    else:
        lines.append("- " + _direction(p, q, fwd.kl_joint, bwd.kl_joint, "Joint KL over attribute combinations"))
        if "kl_joint_ci_low" in pairs:
            lines.append(f"  - bootstrap intervals: KL({p} ‖ {q}){_ci(fwd, 'kl_joint')}, "
                         f"KL({q} ‖ {p}){_ci(bwd, 'kl_joint')}")
    joint_js = "" if np.isfinite(sparse) and sparse > JOINT_MAX_SPARSE else \
        f"; joint {_num(fwd.js_joint)}{_ci(fwd, 'js_joint')}"
    lines.append(f"- Jensen–Shannon divergence (symmetric, at most ln 2 = 0.6931 nats): mean over attributes "
                 f"{_num(fwd.js_mean)}{_ci(fwd, 'js_mean')}{joint_js}.")
    lines.append(f"- Coverage: {_num(fwd.coverage)} of {p}'s images have a combination that {q} also has; "
                 f"{_num(bwd.coverage)} of {q}'s have one {p} has.")
    a = kl_attr[(kl_attr.p == p) & (kl_attr.q == q)].set_index("attribute")["kl"]
    b = kl_attr[(kl_attr.p == q) & (kl_attr.q == p)].set_index("attribute")["kl"].reindex(a.index)
    total = float((a + b).sum())
    order = (a + b).sort_values(ascending=False).index[:top_k]
    rp = rates[rates.dataset == p].set_index("attribute")["rate"]
    rq = rates[rates.dataset == q].set_index("attribute")["rate"]
    share = f"{float((a + b)[order].sum()) / total:.0%}" if total > 0 else "n/a"
    low_a = kl_attr[(kl_attr.p == p) & (kl_attr.q == q)].set_index("attribute").get("ci_low")
    low_b = kl_attr[(kl_attr.p == q) & (kl_attr.q == p)].set_index("attribute").get("ci_low")
    corr = rates[rates.dataset.isin([p, q])].drop_duplicates("dataset").set_index("dataset").get("correction")
    how = "" if corr is None else (f" Rates are {corr.get(p, 'none')} / {corr.get(q, 'none')}-corrected "
                                   f"({p} / {q}; see 'Corrections and the MAC's quality').")
    lines += ["", f"Attributes driving the divergence (top {len(order)} by KL({p}‖{q}) + KL({q}‖{p}), "
                  f"{share} of the symmetric total).{how} The MAC's balanced accuracy on each attribute sits beside "
                  "it (validation split; audit of each dataset where there is one):", "",
              f"| attribute | rate {p} | rate {q} | KL({p}‖{q}) | KL({q}‖{p}) | bal. acc. validation | "
              f"bal. acc. audit {p} / {q} | note |", "|---|---|---|---|---|---|---|---|"]
    for attr in order:
        val, aud, warn = _quality_cells(attr, p, q, quality, members)
        notes = [warn] if warn else []
        if _indistinct(attr, p, q, rates, low_a, low_b):
            notes.append("intervals too wide to tell the datasets apart")
        lines.append(f"| {attr} | {_num(rp[attr])} | {_num(rq[attr])} | {_num(a[attr])} | {_num(b[attr])} | {val} | "
                     f"{aud} | {'; '.join(notes)} |")
    lines.append("")
    return lines


def _indistinct(attr: str, p: str, q: str, rates: pd.DataFrame, low_a, low_b) -> bool:
    """Both KL intervals reach 0, or the two rates' intervals overlap: the data cannot tell p and q apart here."""
    if low_a is not None and low_b is not None and attr in low_a.index and \
            float(low_a[attr]) <= 1e-6 and float(low_b[attr]) <= 1e-6:
        return True
    if "ci_low" not in rates:
        return False
    r = rates[rates.attribute == attr].set_index("dataset")
    if p not in r.index or q not in r.index:
        return False
    lo_p, hi_p, lo_q, hi_q = r.ci_low[p], r.ci_high[p], r.ci_low[q], r.ci_high[q]
    return bool(np.isfinite([lo_p, hi_p, lo_q, hi_q]).all() and lo_p <= hi_q and lo_q <= hi_p)


def corrections_section(ctx: ReportContext, rates: pd.DataFrame) -> list[str]:
    """Which correction each dataset got, what it assumes, and the MAC's quality on it."""
    if not ctx.corrections:
        return []
    lines = ["## Corrections and the MAC's quality", "",
             "Rates, per-attribute KL/JS and their summaries use the corrected rates (`rate`, `kl`); the MAC's counts "
             "stay beside them (`rate_counted`, `kl_counted`, `js_counted`). The joint KL, JS and coverage are "
             "counted (a joint over 2^k combinations cannot be corrected honestly from a few hundred audited faces), "
             "and so are the within-identity statistics.",
             "", "| dataset | correction | what it assumes |", "|---|---|---|"]
    for name, (method, assumption) in ctx.corrections.items():
        lines.append(f"| {name} | {method} | {assumption} |")
    q = ctx.quality
    if q is not None and q.validation:
        chance = [a for a, v in q.validation.items() if np.isfinite(v) and v <= 0.6]
        mean = np.nanmean(list(q.validation.values()))
        lines += ["", f"The MAC's mean balanced accuracy on its validation split: {mean:.3f} over "
                      f"{len(q.validation)} attributes" + (f"; classified at chance (≤ 0.6): {', '.join(chance)} — "
                                                            "their rates and divergences say little" if chance else "")
                  + "."]
    for d, ba in (q.audit.items() if q is not None else []):
        vals = [v for v in ba.values() if np.isfinite(v)]
        if vals:
            lines.append(f"- on the audit of {d}: mean balanced accuracy {np.mean(vals):.3f} over {len(vals)} "
                         "attributes with both classes audited")
    lines.append("")
    return lines


def headline(rates: pd.DataFrame, kl_attr: pd.DataFrame, pairs: pd.DataFrame, focus: list[tuple[str, str]],
             group: dict[str, str], hidden: set[str] = frozenset(), quality=None) -> str:
    """One sentence with what a reader looks for first: the mean per-attribute KL of the main real/synthetic pair in
    both directions (the pooled groups when they are shown, else the first pair) and the attribute driving it most;
    without a real/synthetic pair, the pair with the largest mean KL."""
    rs = [(p, q) for p, q in focus if group.get(p) == "real" and group.get(q) == "synthetic"]
    if rs:
        p, q = rs[0]
    else:
        rest = pairs[~pairs.p.isin(list(hidden)) & ~pairs.q.isin(list(hidden))].dropna(subset=["kl_mean"])
        if not len(rest):
            return "Headline: no pair of datasets to compare."
        top = rest.sort_values("kl_mean", ascending=False).iloc[0]
        p, q = str(top.p), str(top.q)
    fwd = float(pairs[(pairs.p == p) & (pairs.q == q)].kl_mean.iloc[0])
    bwd = float(pairs[(pairs.p == q) & (pairs.q == p)].kl_mean.iloc[0])
    a = kl_attr[(kl_attr.p == p) & (kl_attr.q == q)].set_index("attribute")["kl"]
    b = kl_attr[(kl_attr.p == q) & (kl_attr.q == p)].set_index("attribute")["kl"].reindex(a.index)
    text = (f"Headline: mean per-attribute KL({p} ‖ {q}) = {_num(fwd)} nats, KL({q} ‖ {p}) = {_num(bwd)} nats")
    if len(a) and np.isfinite((a + b).to_numpy()).any():
        driver = str((a + b).idxmax())
        rp = rates[(rates.dataset == p) & (rates.attribute == driver)].rate.iloc[0]
        rq = rates[(rates.dataset == q) & (rates.attribute == driver)].rate.iloc[0]
        text += (f"; top driver {driver} (rate {_num(rp)} in {p}, {_num(rq)} in {q}; KL {_num(a[driver])} / "
                 f"{_num(b[driver])} nats")
        chance = quality.at_chance(driver, [p, q]) if quality is not None else []
        text += f"; but the MAC classifies it at chance: balanced accuracy {', '.join(chance)})" if chance else ")"
        if "correction" in rates:
            corr = rates[rates.dataset.isin([p, q])].drop_duplicates("dataset").set_index("dataset").correction
            text += f"; rates {corr.get(p, 'none')}/{corr.get(q, 'none')}-corrected"
    return text + "."


def _dropped(dropped: dict[str, list[str]] | None) -> str:
    """The attributes left out because an input lacks them (facemac.analysis.provenance)."""
    if not dropped:
        return ""
    return f"; {len(dropped)} left out because an input lacks them ({describe_dropped(dropped)})"


def mixed_checkpoints_note(by_checkpoint: dict[str, list[str]] | None) -> list[str]:
    """A warning paragraph when analyze.allow_mixed_checkpoints let inputs labelled by different MACs in."""
    if not by_checkpoint or len(by_checkpoint) < 2:
        return []
    who = "; ".join(f"checkpoint sha256 {sha[:16]}…: {', '.join(names)}" for sha, names in by_checkpoint.items())
    return [f"> **The inputs were labelled by {len(by_checkpoint)} different MACs** ({who}; "
            "`analyze.allow_mixed_checkpoints=true`). A divergence between datasets labelled by different classifiers "
            "measures the classifiers' difference as much as the data's.", ""]


def write_report(path: Path, rates: pd.DataFrame, kl_attr: pd.DataFrame, pairs: pd.DataFrame,
                 ctx: ReportContext) -> Path:
    """Write report.md and return its path."""
    s = ctx.settings
    lines = ["# Attribute divergence report", "", *([f"**{ctx.headline}**", ""] if ctx.headline else []),
             "KL divergences are in nats. Each Bernoulli (per attribute) and each joint distribution is smoothed with "
             f"alpha = {s['alpha']} pseudo-counts per outcome.", "",
             *mixed_checkpoints_note(s.get("mixed_checkpoints")),
             "## Settings", "",
             f"- mode: {s['mode']} ({'mean probability' if s['mode'] == 'soft' else 'labels from the manifest thresholds'}"
             "; label files are already hard)",
             f"- label rule: probability > the checkpoint's {s.get('label_rule', 'counting')} thresholds "
             + ("(chosen on validation for faithful counts)" if s.get("label_rule", "counting") == "counting"
                else "(tuned for balanced accuracy: rare attributes are over-counted)"),
             f"- alpha: {s['alpha']}",
             f"- attributes: {len(s['attributes'])}; joint KL over {len(s['joint_attributes'])} attributes"
             + ("" if s["joint_attributes"] else " (joint KL off)") + _dropped(s.get("dropped_attributes")),
             f"- bootstrap: {s['n_boot']} replicates resampling identities (images when unknown) and each "
             f"correction's evidence (audited faces, validation identities), seed {s['seed']}, {s['level']:.0%} "
             "percentile intervals of divergences centred on their estimates" if s["n_boot"]
             else "- bootstrap: off (n_boot=0)",
             f"- rate intervals ({s['level']:.0%}): Wilson score for counted rates; corrected rates: the "
             "percentile interval of their replicates (a normal interval without bootstrap)",
             f"- reliability filter: min_reliability={s['min_reliability']}" if s.get("min_reliability") is not None
             else "- reliability filter: off", "",
             "## Inputs", "", "| dataset | group | kind | rows | path | checkpoint sha256 |", "|---|---|---|---|---|---|"]
    for d in ctx.datasets:
        lines.append(f"| {d['name']} | {d['group']} | {d['kind']} | {d.get('rows', '')} | {d.get('path', '')} | "
                     f"{(d.get('checkpoint_sha256') or '')[:16]} |")
    if ctx.pooled:
        lines += ["", f"Pooled pseudo-datasets: {', '.join(ctx.pooled)} (sums of the members of each group; "
                      "members: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in s.get("pooled_members", {}).items()
                                              if k in ctx.pooled) + ")."]
    if ctx.aliases:
        lines += ["", "Not pooled here, because the group holds one dataset (its pooled rows in the CSVs equal that "
                      "dataset's): " + ", ".join(f"{k} = {v}" for k, v in ctx.aliases.items()) + "."]
    lines += ["", *corrections_section(ctx, rates), "## Real vs synthetic", ""]
    group = {d["name"]: d["group"] for d in ctx.datasets}
    group.update({name: name.split("(")[0] for name in ctx.pooled})
    names = list(dict.fromkeys(pairs.p))
    rs = [(p, q) for p, q in ctx.focus if group.get(p) == "real" and group.get(q) == "synthetic"]
    if not rs:
        lines += ["No real/synthetic pair among the inputs (set `groups` to label them). Pairs by mean KL:", ""]
        shown = pairs[~pairs.p.isin(list(ctx.aliases)) & ~pairs.q.isin(list(ctx.aliases))]
        for _, row in shown.sort_values("kl_mean", ascending=False).head(ctx.top_k).iterrows():
            lines.append(f"- KL({row.p} ‖ {row.q}) mean {_num(row.kl_mean)} nats, joint {_num(row.kl_joint)}")
        lines.append("")
    rows = [int(d["rows"]) for d in ctx.datasets if d.get("rows")]
    k = int(np.floor(np.log2(min(rows) / 20))) if rows and min(rows) >= 40 else 1
    hint = (f"Choose `joint_attributes=[...]` with at most {k} attributes (2^k combinations, about 20 images each "
            f"in the smallest dataset) for a joint comparison.")
    for p, q in rs:
        lines += _pair_section(p, q, pairs, kl_attr, rates, ctx.top_k, hint, ctx.quality,
                               s.get("pooled_members") or {})
    checks = [(d["name"], d["labels_of"]) for d in ctx.datasets
              if d.get("labels_of") in names and d["labels_of"] != d["name"]]  # a label file named like its folder
    if checks:
        lines += ["## The MAC's view vs human labels", ""]
        for lab, pred in checks:
            row = pairs[(pairs.p == lab) & (pairs.q == pred)].iloc[0]
            diff = (rates[rates.dataset == pred].set_index("attribute")["rate"]
                    - rates[rates.dataset == lab].set_index("attribute")["rate"])
            worst = diff.abs().sort_values(ascending=False).index[:ctx.top_k]
            lines.append(f"- {pred}: mean KL({lab} ‖ {pred}) = {_num(row.kl_mean)} nats; largest rate differences "
                         "(MAC − labels): " + ", ".join(f"{a} {diff[a]:+.3f}" for a in worst))
        lines.append("")
    lines += ctx.sections
    lines += ["## Files", "", "- `rates.csv`: dataset, group, attribute, n, positives (the MAC's), rate, ci_low, "
              "ci_high (corrected), rate_counted, correction",
              "- `kl_attributes.csv`: p, q, attribute, kl, js (KL(p‖q) and the Jensen–Shannon divergence in nats, "
              "every ordered pair, from the corrected rates), kl_counted, js_counted, correction (p's/q's)",
              "- `kl_pairs.csv`: p, q, kl_mean, kl_sum, kl_joint, coverage, joint_sparse_p, joint_sparse_q (share of "
              f"p's / q's images in combinations seen < {JOINT_MIN_COUNT} times; above {JOINT_MAX_SPARSE} the joint "
              "KL is not reported as a finding), js_mean, js_sum, js_joint",
              "- `figures/`: rates.png, kl_heatmap.png, kl_asymmetry.png", *ctx.files, ""]
    path.write_text("\n".join(lines))
    return path
