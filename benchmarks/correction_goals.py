"""Issue #20's goals, measured: counted vs corrected rates and divergences on demo MACs of three accuracies.

For each MAC of benchmarks/weak_macs.py (default ~0.995, acc091 ~0.91, acc080 ~0.80 test mean accuracy) the demo
targets' annotations are analysed three ways, each with the analysis' defaults (alpha 0.5, n_boot 200,
experiment=demo's joint attributes):

* counted:    analyze.correction=none (the MAC's counts, as before issue #20);
* validation: no audit (analyze.correction=auto: the checkpoint's validation errors, with their assumption check);
* audit:      a 300-face audit per target, drawn as ``python -m facemac.audit`` draws it and filled by the simulated
              person from the targets' labels.csv (facemac/audit/simulate.py), over ``--seeds`` audit seeds.

Printed per MAC and way, over the real x synthetic x attribute KL cells (both directions, 4 pairs x 2 x 24 = 192):
  recovered   share of cells within max(0.02 nats, 25 %) of the true-label KL (alpha-smoothed KL of labels.csv counts)
  cover_pop   share of 95 % KL intervals covering the population KL (the profiles' generating priors, data/demo/)
  cover_true  share covering the true-label KL
  err         mean signed KL error vs the true-label KL (nats)
  pairs_in    share of kl_pairs statistics (7 per ordered pair) inside their own interval
  rate_err_real  mean |rate - true rate| on the real-like targets (the MAC's own domain), for the no-audit goal

    python benchmarks/correction_goals.py [--macs default,acc091,acc080] [--seeds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from facemac.analysis.divergence import attribute_kl, bernoulli_kl  # noqa: E402
from facemac.data.demo import PROFILES, TARGET_NAMES  # noqa: E402

JOINT = ["Male", "Young", "Pale_Skin", "Eyeglasses", "Wearing_Hat", "Smiling"]
PAIR_STATS = ["kl_mean", "kl_sum", "kl_joint", "coverage", "js_mean", "js_sum", "js_joint"]
REAL = [t for t in TARGET_NAMES if PROFILES[t].group == "real"]
SYNTH = [t for t in TARGET_NAMES if PROFILES[t].group == "synthetic"]


def analyse(annotations: Path, out: Path, extra: list[str]) -> Path:
    """run(cfg) in-process, like `python analyze.py annotations=... <extra>`."""
    from tests.conftest import compose_cfg

    from facemac.analysis.run import run

    cfg = compose_cfg("analyze", ["logger=none", f"annotations={annotations}", "analyze.n_boot=200",
                                  f"analyze.joint_attributes=[{','.join(JOINT)}]", f"paths.log_dir={out}/logs",
                                  *extra], out)
    run(cfg)
    return out


def truths(annotations: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for t in TARGET_NAMES:
        m = json.loads((annotations / t / "manifest.json").read_text())
        out[t] = pd.read_csv(Path(m["root"]) / "labels.csv")
    return out


def score(folder: Path, truth: dict[str, pd.DataFrame]) -> dict[str, float]:
    kl = pd.read_csv(folder / "kl_attributes.csv").set_index(["p", "q", "attribute"])
    pairs = pd.read_csv(folder / "kl_pairs.csv")
    rates = pd.read_csv(folder / "rates.csv").set_index(["dataset", "attribute"])
    rec, cpop, ctrue, err = [], [], [], []
    for real in REAL:
        for synth in SYNTH:
            for p, q in ((real, synth), (synth, real)):
                attrs = [a for a in truth[p].columns if a not in ("path", "identity")]
                true = attribute_kl(truth[p][attrs].sum().to_numpy(), len(truth[p]),
                                    truth[q][attrs].sum().to_numpy(), len(truth[q]), 0.5)
                tp, tq = PROFILES[p].true_rates(), PROFILES[q].true_rates()
                pop = np.array([float(bernoulli_kl(tp[a], tq[a])) for a in attrs])
                rows = kl.loc[p, q].loc[attrs]
                est, lo, hi = rows.kl.to_numpy(), rows.ci_low.to_numpy(), rows.ci_high.to_numpy()
                rec += list(np.abs(est - true) <= np.maximum(0.02, 0.25 * true))
                cpop += list((lo <= pop) & (pop <= hi))
                ctrue += list((lo <= true) & (true <= hi))
                err += list(est - true)
    inside = np.concatenate([((pairs[f"{c}_ci_low"] <= pairs[c]) & (pairs[c] <= pairs[f"{c}_ci_high"])).to_numpy()
                             for c in PAIR_STATS])
    rate_err = []
    for t in REAL:
        attrs = [a for a in truth[t].columns if a not in ("path", "identity")]
        rate_err += list(np.abs(rates.loc[t].loc[attrs].rate.to_numpy() - truth[t][attrs].mean().to_numpy()))
    return {"recovered": float(np.mean(rec)), "cover_pop": float(np.mean(cpop)), "cover_true": float(np.mean(ctrue)),
            "err": float(np.mean(err)), "pairs_in": float(np.mean(inside)), "rate_err_real": float(np.mean(rate_err)),
            "cells": len(rec)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--macs", default="default,acc091,acc080")
    ap.add_argument("--seeds", type=int, default=3, help="audit seeds (each a fresh 300-face sample per target)")
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--cache", type=Path, default=None, help="weak_macs cache folder (default as weak_macs.py)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("facemac").setLevel(logging.WARNING)
    from weak_macs import ensure

    from facemac.audit.simulate import simulate_audits

    runs = ensure(args.cache, args.macs.split(","))
    results = {}
    with tempfile.TemporaryDirectory(prefix="facemac-goals-") as scratch:
        tmp = Path(scratch)
        for name in args.macs.split(","):
            ann = Path(runs[name].annotations)
            truth = truths(ann)
            res = {"counted": score(analyse(ann, tmp / name / "counted", ["analyze.correction=none"]), truth),
                   "validation": score(analyse(ann, tmp / name / "validation", []), truth)}
            per_seed = []
            for seed in range(args.seeds):
                audit = tmp / name / f"audit{seed}"
                simulate_audits(ann, audit, args.size, seed,
                                {t: Path(json.loads((ann / t / "manifest.json").read_text())["root"]) / "labels.csv"
                                 for t in TARGET_NAMES})
                per_seed.append(score(analyse(ann, tmp / name / f"run{seed}", [f"analyze.audit={audit}"]), truth))
            res["audit"] = {k: float(np.mean([s[k] for s in per_seed])) for k in per_seed[0]}
            res["audit"]["recovered_min_seed"] = min(s["recovered"] for s in per_seed)
            res["audit"]["cover_pop_min_seed"] = min(s["cover_pop"] for s in per_seed)
            results[name] = res
            print(f"\n{name} (test mean accuracy {runs[name].test_mean_accuracy:.3f}), {res['counted']['cells']} cells")
            print(f"  {'way':<11}{'recovered':>10}{'cover_pop':>10}{'cover_true':>11}{'err':>9}{'pairs_in':>9}"
                  f"{'rate_err_real':>14}")
            for way, r in res.items():
                print(f"  {way:<11}{r['recovered']:>10.3f}{r['cover_pop']:>10.3f}{r['cover_true']:>11.3f}"
                      f"{r['err']:>+9.4f}{r['pairs_in']:>9.3f}{r['rate_err_real']:>14.4f}")
            if args.seeds > 1:
                print(f"  audit, worst of {args.seeds} seeds: recovered {res['audit']['recovered_min_seed']:.3f}, "
                      f"cover_pop {res['audit']['cover_pop_min_seed']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
