"""Demo MACs of three accuracies, trained by the same pipeline (less training only), each annotating the demo targets:
the test bed for corrections of the MAC's error (issue #20; benchmarks/correction_candidates.py, the goals benchmark).

    python benchmarks/weak_macs.py [--out DIR] [--macs default,acc091,acc080]

MACs (conf defaults, `experiment=demo`, seed 0; the schedule spans ``train.max_steps``):

    name      overrides               test mean accuracy (measured on the 2-core dev machine, 2026-12-03)
    default   (none: 3 epochs)        ~0.995
    acc091    train.max_steps=120     ~0.91  (like a real CelebA MAC)
    acc080    train.max_steps=40      ~0.80
    acc091_seed1, acc080_seed1        the same with seed=1 (built only when named in --macs)

Everything is cached under ``--out`` (default ``$FACEMAC_CACHE/weak_macs``, i.e. ``~/.cache/facemac/weak_macs``) and
reused when present (a stage folder with its ``DONE`` marker is never rerun; delete a MAC's folder to redo it). Layout:

    <out>/macs.json                           {name: {max_steps, test_mean_accuracy, test_mA, val_mA, checkpoint,
                                               annotations}} (absolute paths)
    <out>/<name>/train/                       the train stage's run folder: checkpoints/best.pt (with the validation
                                               predictions), metrics.json, test_metrics.csv, DONE
    <out>/<name>/annotate/annotations/<dataset>/
                                              one annotation table per demo target (demo_real_a, demo_real_b,
                                               demo_synth_a, demo_synth_b): part-*.parquet, manifest.json (its "root"
                                               is the target's image folder, whose labels.csv is the ground truth),
                                               failures.csv, validation.parquet (the MAC's validation predictions)
    <out>/.lock                               held while a process fills the folder (others wait)

From Python (the benchmark folder on sys.path): ``runs = ensure(out)`` → {name: MacRun}; ``load_targets(run)`` →
{dataset: Target} with per-row probabilities, identities and true labels joined on ``path``;
``facemac.analysis.correction.validation.load_validation(<annotation dir>)`` gives the ValidationSet.
About 1 minute per MAC on 2 free cores (training 25-60 s, annotation of 8,000 images ~10-20 s).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# name -> train overrides (less training, same pipeline)
MACS: dict[str, list[str]] = {
    "default": [],
    "acc091": ["train.max_steps=120"],
    "acc080": ["train.max_steps=40"],
    # other training seeds, for robustness checks (not built unless asked for with --macs)
    "acc091_seed1": ["train.max_steps=120", "seed=1"],
    "acc080_seed1": ["train.max_steps=40", "seed=1"],
}
DEFAULT_MACS = ("default", "acc091", "acc080")
TARGETS = ("demo_real_a", "demo_real_b", "demo_synth_a", "demo_synth_b")


def default_out() -> Path:
    return Path(os.environ.get("FACEMAC_CACHE", "~/.cache/facemac")).expanduser() / "weak_macs"


@dataclass
class MacRun:
    """One demo MAC and its annotations (absolute paths)."""

    name: str
    max_steps: int | None
    test_mean_accuracy: float
    test_mA: float
    val_mA: float
    checkpoint: str
    annotations: str

    def annotation_dir(self, dataset: str) -> Path:
        return Path(self.annotations) / dataset


@dataclass
class Target:
    """One annotated demo target: rows joined with labels.csv on path."""

    name: str
    group: str
    annotation_dir: Path
    attributes: list[str]
    paths: np.ndarray         # str [N]
    identity: np.ndarray      # str [N]
    probs: np.ndarray         # float32 [N, A]
    truth: np.ndarray         # bool [N, A]
    thresholds: np.ndarray    # float64 [A], the set the manifest's labels use


def _stage(script: str, run_dir: Path, overrides: list[str]) -> None:
    """Run one stage as a process (as users do) unless its folder already holds DONE."""
    if (run_dir / "DONE").is_file():
        return
    cmd = [sys.executable, str(ROOT / script), "experiment=demo", "logger=none", f"hydra.run.dir={run_dir}",
           *overrides]
    print("+", " ".join(cmd[1:]), flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def ensure_mac(out: Path, name: str) -> MacRun:
    """Train and annotate one MAC (or find it), → its MacRun."""
    overrides = MACS[name]
    train_dir, ann_dir = out / name / "train", out / name / "annotate"
    _stage("train.py", train_dir, overrides)
    ckpt = train_dir / "checkpoints" / "best.pt"
    _stage("annotate.py", ann_dir, [f"ckpt={ckpt}"])
    metrics = json.loads((train_dir / "metrics.json").read_text())
    steps = next((int(o.split("=")[1]) for o in overrides if o.startswith("train.max_steps=")), None)
    return MacRun(name, steps, float(metrics["test"]["mean_accuracy"]), float(metrics["test"]["mA"]),
                  float(metrics["val"]["mA"]), str(ckpt.resolve()), str((ann_dir / "annotations").resolve()))


def ensure(out: Path | None = None, names: list[str] | None = None) -> dict[str, MacRun]:
    """Every MAC in ``names`` (default DEFAULT_MACS), trained and annotated under ``out`` once; macs.json updated."""
    out = (out or default_out()).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = list(names or DEFAULT_MACS)
    unknown = [n for n in names if n not in MACS]
    if unknown:
        raise SystemExit(f"error: unknown MAC {unknown}; choose from {', '.join(MACS)}")
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = {n: ensure_mac(out, n) for n in names}
        index = out / "macs.json"
        known = json.loads(index.read_text()) if index.is_file() else {}
        known.update({n: asdict(r) for n, r in runs.items()})
        index.write_text(json.dumps(known, indent=1))
    return runs


def load_targets(run: MacRun, datasets: tuple[str, ...] = TARGETS) -> dict[str, Target]:
    """Per demo target: probabilities, identities and true labels (labels.csv beside its images), joined on path."""
    from facemac.annotation.evaluate import read_annotations
    from facemac.annotation_table import label_thresholds, read_manifest

    out = {}
    for name in datasets:
        d = run.annotation_dir(name)
        manifest = read_manifest(d)
        attrs = list(manifest["attributes"])
        truth = pd.read_csv(Path(manifest["root"]) / "labels.csv", dtype={"path": str})
        joined = read_annotations(d).merge(truth, on="path", suffixes=("", "_true"))
        thr, _ = label_thresholds(manifest)
        out[name] = Target(name, manifest["group"], d, attrs, joined["path"].to_numpy(),
                           joined["identity"].astype(str).to_numpy(), joined[attrs].to_numpy(np.float32),
                           joined[[f"{a}_true" for a in attrs]].to_numpy(np.float64) > 0.5,
                           np.array([thr[a] for a in attrs]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="cache folder (default $FACEMAC_CACHE/weak_macs)")
    ap.add_argument("--macs", default=",".join(DEFAULT_MACS), help=f"comma-separated subset of {', '.join(MACS)}")
    args = ap.parse_args(argv)
    runs = ensure(args.out, [m for m in args.macs.split(",") if m])
    rows = []
    for r in runs.values():
        targets = load_targets(r)
        acc = {t.name: float(((t.probs > t.thresholds) == t.truth).mean()) for t in targets.values()}
        rows.append({"mac": r.name, "max_steps": r.max_steps, "test mean acc": round(r.test_mean_accuracy, 4),
                     "test mA": round(r.test_mA, 4),
                     **{f"acc {k}": round(v, 4) for k, v in acc.items()}})
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"cache: {(args.out or default_out()).expanduser().resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
