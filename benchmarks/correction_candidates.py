"""Which no-audit correction should be the default? Compare candidates on demo MACs of three accuracies.

Each candidate sees one MAC's stored target probabilities and its validation predictions (validation.parquet, as
the analysis does) and estimates every demo target's per-attribute rate; the truth is the target's labels.csv. The
bootstrap (B replicates) resamples the target's identities and the validation identities together, as the analysis.

    python benchmarks/correction_candidates.py [--out DIR (weak_macs cache)] [--boot 200] [--json figures.json]

Candidates: count (classify and count), acc_clip (Rogan–Gladen/ACC clipped, = QuaPy ACC), acc_raw (unclipped, for
reference: not a rate), pacc_clip (= QuaPy PACC), acc_bayes / pacc_bayes (facemac: posterior mean under a flat prior
with the bootstrap's spread), beta_grid (posterior mean of the rate on a grid, integrating the bootstrap's tpr/fpr
replicates, binomial target likelihood at the design-effect-corrected size), emq (Saerens–Latinne–Decaestecker EM on
the per-row posteriors, validation prior as the source prior; point only); `+check`: with the assumption check,
`acc_bayes+check(row sums)`: the same with the check's moments drawn by `moment_replicates` from row-level sums (an
engine that keeps only hard-label counts per identity). Per MAC x target group, printed:

* MAE: mean |estimated - true rate| over targets x attributes; `closer`: share of cells at least as close to the truth
  as counting (ties count); `worst`: the largest excess error over counting in one cell;
* KL cells within max(0.02 nats, 25 %) of the true-label KL (real x synthetic, both directions, alpha 0.5);
* coverage: share of cells whose 95 % interval holds the true rate (methods with intervals).

The rule for the default (docs/analyze.md "Without an audit"): among the methods whose MAE on the real-like targets
(the MAC's own domain) is at most counting's for every MAC, the one with the fewest cells *confidently much worse*
than counting (> 0.05 further from the truth, truth outside its 95 % interval), then the most `closer` cells.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from weak_macs import DEFAULT_MACS, ensure, load_targets  # noqa: E402

from facemac.analysis.bootstrap import draw_counts  # noqa: E402
from facemac.analysis.correction.validation import (RowMoments, TargetSummary, confusion_stats,  # noqa: E402
                                                    correct, load_validation, moment_replicates, uncertain)
from facemac.analysis.divergence import attribute_kl  # noqa: E402

ALPHA = 0.5
TOL_ABS, TOL_REL = 0.02, 0.25
LIBRARY = ("count", "acc_clip", "pacc_clip", "acc_bayes", "pacc_bayes")
CHECKED = ("acc_clip+check", "pacc_clip+check", "acc_bayes+check", "pacc_bayes+check")
ROWSUMS = "acc_bayes+check(row sums)"  # the check's moments from RowMoments + moment_replicates, not per identity
CANDIDATES = ("count", "acc_raw", "acc_clip", "pacc_clip", "acc_bayes", "pacc_bayes", "beta_grid", "emq", *CHECKED,
              ROWSUMS)


def identity_sums(target) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per target identity: rows [I], predicted positives, probability sums and uncertain-band rows [I, A] (what the
    analysis streams)."""
    _, inv = np.unique(target.identity, return_inverse=True)
    i = inv.max() + 1
    rows = np.bincount(inv, minlength=i).astype(np.float64)
    sums = []
    for values in ((target.probs > target.thresholds), target.probs, uncertain(target.probs)):
        acc = np.zeros((i, target.probs.shape[1]))
        np.add.at(acc, inv, values.astype(np.float64))
        sums.append(acc)
    return rows, *sums


def emq(probs: np.ndarray, source_prior: np.ndarray, iters: int = 1000, tol: float = 1e-8) -> np.ndarray:
    """Saerens–Latinne–Decaestecker EM prior adjustment per attribute (binary), vectorised over attributes."""
    p = np.clip(probs.astype(np.float64), 1e-9, 1 - 1e-9)
    s = np.clip(source_prior, 1e-6, 1 - 1e-6)
    pi = p.mean(0)
    for _ in range(iters):
        a = pi / s * p
        b = (1 - pi) / (1 - s) * (1 - p)
        new = (a / (a + b)).mean(0)
        if np.abs(new - pi).max() < tol:
            pi = new
            break
        pi = new
    return pi


def beta_grid(q_point: np.ndarray, q_reps: np.ndarray, n: float, tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """Posterior mean of the rate on a 0..1 grid: flat prior, binomial likelihood of the counted rate at the
    design-effect-corrected size, averaged over the bootstrap's tpr/fpr replicates [B, A]."""
    grid = np.linspace(0.0, 1.0, 501)
    var_binom = np.clip(q_point * (1 - q_point) / n, 1e-12, None)
    deff = np.clip(np.var(q_reps, 0, ddof=1) / var_binom, 1.0, None)
    n_eff = n / deff
    k = q_point * n_eff
    out = np.empty(len(q_point))
    for a in range(len(q_point)):
        theta = np.clip(fpr[:, a, None] + grid[None] * (tpr[:, a, None] - fpr[:, a, None]), 1e-9, 1 - 1e-9)
        loglik = k[a] * np.log(theta) + (n_eff[a] - k[a]) * np.log(1 - theta)
        lik = np.exp(loglik - loglik.max()).mean(0)
        out[a] = (grid * lik).sum() / lik.sum()
    return out


def estimate_mac(run, boot: int, seed: int) -> dict:
    """{target: {"group", "n", "truth" [A], method: {"point" [A], "low", "high"}}} for one MAC."""
    targets = load_targets(run)
    first = next(iter(targets.values()))
    vs = load_validation(first.annotation_dir)
    rng = np.random.default_rng([seed, 1])
    v_draws = draw_counts(rng, vs.identity_weights, boot)  # one validation draw per replicate, shared by the targets
    stats = confusion_stats(vs, v_draws)
    point_stats = confusion_stats(vs)
    out = {}
    for t_i, (name, t) in enumerate(targets.items()):
        rows, pos, prob, unc = identity_sums(t)
        w = draw_counts(np.random.default_rng([seed, 2, t_i]), np.ones(len(rows)), boot)
        n_rep = w @ rows
        q_reps, m_reps, u_reps = ((w @ x) / n_rep[:, None] for x in (pos, prob, unc))
        n = rows.sum()
        q, m, u = pos.sum(0) / n, prob.sum(0) / n, unc.sum(0) / n
        res = {"group": t.group, "n": float(n), "truth": t.truth.mean(0)}
        reps, pt = TargetSummary(q_reps, m_reps, u_reps), TargetSummary(q[None], m[None], u[None])
        for method in LIBRARY + CHECKED:
            base = method.removesuffix("+check")
            c = correct(reps, stats, base, pt, point_stats, check=method.endswith("+check"))
            lo, hi = c.interval() if base.endswith("bayes") else np.percentile(c.replicates, [2.5, 97.5], 0)
            res[method] = {"point": c.point, "low": lo, "high": hi}
            if c.check is not None:
                res[method].update(applied=float(c.check.applied.mean()), consistent=bool(c.check.consistent),
                                   failed=float(c.check.failed.mean()))
        m_rs, u_rs = moment_replicates(q_reps, RowMoments.of(t.probs, t.thresholds), np.random.default_rng([seed, 3]))
        c = correct(TargetSummary(q_reps, m_rs, u_rs), stats, "acc_bayes", pt, point_stats)
        lo, hi = c.interval()
        res[ROWSUMS] = {"point": c.point, "low": lo, "high": hi, "applied": float(c.check.applied.mean()),
                        "consistent": bool(c.check.consistent), "failed": float(c.check.failed.mean())}
        raw = correct(reps, stats, "acc_clip", pt, point_stats, check=False)
        raw_pt = (q - point_stats.fpr[0]) / np.maximum(point_stats.tpr[0] - point_stats.fpr[0], 1e-3)
        res["acc_raw"] = {"point": raw_pt, "low": np.percentile(raw.raw, 2.5, 0),
                          "high": np.percentile(raw.raw, 97.5, 0)}
        res["beta_grid"] = {"point": beta_grid(q, q_reps, n, np.nan_to_num(stats.tpr, nan=1.0),
                                               np.nan_to_num(stats.fpr, nan=0.0)), "low": None, "high": None}
        src = (vs.labels == 1).sum(0) / np.maximum((vs.labels >= 0).sum(0), 1)
        res["emq"] = {"point": emq(t.probs, src), "low": None, "high": None}
        out[name] = res
    return out


def score(est: dict) -> dict[str, dict[str, dict]]:
    """{method: {group: figures}} for one MAC (group: real, synthetic, all)."""
    names = list(est)
    groups = {"real": [t for t in names if est[t]["group"] == "real"],
              "synthetic": [t for t in names if est[t]["group"] == "synthetic"]}
    groups["all"] = names
    out: dict[str, dict[str, dict]] = {}
    for method in CANDIDATES:
        out[method] = {}
        for g, members in groups.items():
            err = np.concatenate([np.abs(est[t][method]["point"] - est[t]["truth"]) for t in members])
            err_c = np.concatenate([np.abs(est[t]["count"]["point"] - est[t]["truth"]) for t in members])
            fig = {"mae": float(err.mean()), "closer": float((err <= err_c + 1e-12).mean()),
                   "worst": float((err - err_c).max())}
            if est[members[0]][method]["low"] is not None:
                cov = np.concatenate([(est[t][method]["low"] <= est[t]["truth"] + 1e-12)
                                      & (est[t]["truth"] <= est[t][method]["high"] + 1e-12) for t in members])
                fig["coverage"] = float(cov.mean())
                # much worse and confidently so: > 0.05 further from the truth than counting, truth outside the interval
                fig["confidently_worse"] = int(((err - err_c > 0.05) & ~cov).sum())
            if "applied" in est[members[0]][method]:
                fig["applied"] = float(np.mean([est[t][method]["applied"] for t in members]))
                fig["consistent"] = f"{sum(est[t][method]['consistent'] for t in members)}/{len(members)}"
            out[method][g] = fig
        within = []
        real, synth = groups["real"], groups["synthetic"]
        for r in real:
            for s in synth:
                for p, q in ((r, s), (s, r)):
                    rate_p = np.clip(est[p][method]["point"], 0, 1)
                    rate_q = np.clip(est[q][method]["point"], 0, 1)
                    n_p, n_q = est[p]["n"], est[q]["n"]
                    kl = attribute_kl(rate_p * n_p, n_p, rate_q * n_q, n_q, ALPHA)
                    kl_true = attribute_kl(est[p]["truth"] * n_p, n_p, est[q]["truth"] * n_q, n_q, ALPHA)
                    within.append(np.abs(kl - kl_true) <= np.maximum(TOL_ABS, TOL_REL * kl_true))
        out[method]["all"]["kl_cells_within"] = float(np.concatenate(within).mean())
    return out


def choose(results: dict[str, dict]) -> tuple[str | None, pd.DataFrame]:
    """The rule in the module docstring, over the library's methods (the ones the analysis can run)."""
    rows = []
    for method in LIBRARY + CHECKED + (ROWSUMS,):
        closer = np.mean([results[mac][method]["all"]["closer"] for mac in results])
        worst = max(results[mac][method]["all"]["worst"] for mac in results)
        bad = sum(results[mac][method]["all"]["confidently_worse"] for mac in results)
        real_ok = all(results[mac][method]["real"]["mae"] <= results[mac]["count"]["real"]["mae"] + 1e-12
                      for mac in results)
        rows.append({"method": method, "closer (mean over MACs)": round(float(closer), 3),
                     "worst excess": round(worst, 3), "confidently worse cells": bad,
                     "real MAE <= count (every MAC)": real_ok})
    frame = pd.DataFrame(rows)
    eligible = frame[frame["real MAE <= count (every MAC)"] & ~frame["method"].isin(["count", ROWSUMS])]
    ranked = eligible.sort_values(["confidently worse cells", "closer (mean over MACs)"], ascending=[True, False])
    pick = None if ranked.empty else str(ranked.iloc[0]["method"])
    return pick, frame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="the weak_macs cache (default $FACEMAC_CACHE/weak_macs)")
    ap.add_argument("--macs", default=",".join(DEFAULT_MACS), help="weak_macs names, comma-separated")
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    runs = ensure(args.out, args.macs.split(","))
    results = {}
    for name, run in runs.items():
        results[name] = score(estimate_mac(run, args.boot, args.seed))
        rows = []
        for method, figs in results[name].items():
            row = {"method": method}
            for g in ("real", "synthetic"):
                f = figs[g]
                row.update({f"{g[:5]} MAE": round(f["mae"], 4), f"{g[:5]} closer": round(f["closer"], 3),
                            f"{g[:5]} worst": round(f["worst"], 3),
                            f"{g[:5]} cover": round(f.get("coverage", np.nan), 3),
                            f"{g[:5]} applied": f"{f['applied']:.2f} ({f['consistent']})" if "applied" in f else "-"})
            row["KL cells"] = round(figs["all"]["kl_cells_within"], 3)
            rows.append(row)
        print(f"\nMAC {name} (test mean accuracy {run.test_mean_accuracy:.4f}), B={args.boot}")
        print(pd.DataFrame(rows).to_string(index=False))
    pick, frame = choose(results)
    print("\nrule: among the methods with real-like MAE <= counting's for every MAC, the fewest cells confidently much "
          "worse than counting (> 0.05 further, truth outside the interval), then the most cells at least as close")
    print(frame.to_string(index=False))
    print(f"default: {pick}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "default": pick}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
