"""Scale check for the analysis stage: 4 datasets x 500,000 rows x 47 attributes of Parquet, streamed.

Writes annotation tables per the contract into a temporary folder (part by part, so generation stays small), runs
facemac.analysis.run.run(cfg) on them with logger=none, and prints wall time, peak RSS (ru_maxrss) and, with
--tracemalloc, the peak of Python/numpy allocations, then one JSON line. Figures depend on the machine and its load.

    python benchmarks/analyze_scale.py                       # defaults: 4 x 500k x 47, n_boot=50, audits, validation
    python benchmarks/analyze_scale.py --rows 100000 --n-boot 0 --no-identity
    python benchmarks/analyze_scale.py --audit 0 --validation 0  # counted only (as before issue #20)

With ``--audit N`` (default 300) every dataset gets an N-face audit (a simple random sample; the "person" flips 10 % of
the MAC's labels) and the analysis reads it (analyze.audit); with ``--validation N`` (default 20,000 rows of 2,000
identities) every table carries validation predictions, so datasets without an audit get the validation correction
(here all have one; ``--audit 0`` measures the validation path alone).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemac.attributes import MAADFACE_ATTRIBUTES  # noqa: E402
from tests.annotation_fixtures import write_annotation_dir  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def generate(root: Path, datasets: int, rows: int, attributes: list[str], per_identity: int, part_rows: int,
             seed: int) -> list[Path]:
    """Annotation dirs with dataset-specific attribute rates; identities of ``per_identity`` images (0: none)."""
    rng = np.random.default_rng(seed)
    dirs = []
    for d in range(datasets):
        rates = rng.beta(0.7, 0.7, size=len(attributes)).astype(np.float32)
        name = f"bench_{'real' if d % 2 == 0 else 'synth'}_{d}"

        def parts(name=name, rates=rates):
            for start in range(0, rows, part_rows):
                n = min(part_rows, rows - start)
                labels = rng.random((n, len(attributes)), dtype=np.float32) < rates
                noise = rng.random((n, len(attributes)), dtype=np.float32) * 0.45
                probs = np.where(labels, 1.0 - noise, noise)
                ids = (np.array([f"{name}_{i // per_identity:06d}" for i in range(start, start + n)], dtype=object)
                       if per_identity else None)
                yield probs, ids

        dirs.append(write_annotation_dir(root / "annotations" / name, name, "real" if d % 2 == 0 else "synthetic",
                                         attributes, parts()))
    return dirs


def add_validation(directory: Path, attributes: list[str], rows: int, seed: int) -> None:
    """validation.parquet (rows of 2,000 identities, ~90 % accurate probabilities) and its manifest entry."""
    from facemac.annotation_table import VALIDATION_KEY, read_manifest, write_manifest, write_validation

    rng = np.random.default_rng(seed)
    labels = (rng.random((rows, len(attributes))) < 0.3).astype(np.int8)
    noise = rng.random((rows, len(attributes)), dtype=np.float32) * 0.6
    probs = np.where(labels == 1, 1.0 - noise, noise)
    manifest = read_manifest(directory)
    manifest[VALIDATION_KEY] = write_validation(directory, np.arange(rows) // max(rows // 2000, 1), labels, probs,
                                                attributes)
    write_manifest(directory, manifest)


def write_audit(directory: Path, out: Path, attributes: list[str], size: int, seed: int) -> None:
    """<out>/<dataset>.csv: a simple random sample of ``size`` rows, judged as the MAC labelled them with 10 % of the
    cells flipped (a person who disagrees with the MAC that often)."""
    import pandas as pd
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    table = pd.concat([pq.read_table(f, columns=["path", *attributes]).to_pandas()
                       for f in sorted(directory.glob("part-*.parquet"))])
    pick = table.iloc[rng.choice(len(table), size, replace=False)]
    mac = pick[attributes].to_numpy() > 0.5
    judged = mac ^ (rng.random(mac.shape) < 0.1)
    frame = pd.DataFrame(judged.astype(int), columns=attributes)
    frame.insert(0, "path", pick["path"].to_numpy())
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{directory.name}.csv", index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=4)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--attributes", type=int, default=47)
    ap.add_argument("--per-identity", type=int, default=50, help="images per identity (0 = identities unknown)")
    ap.add_argument("--no-identity", action="store_true", help="same as --per-identity 0")
    ap.add_argument("--n-boot", type=int, default=50)
    ap.add_argument("--joint", type=int, default=None, help="joint KL over the first N attributes (default: all)")
    ap.add_argument("--part-rows", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=None,
                    help="keep the generated tables in this folder and reuse them on later runs (default: temp dir)")
    ap.add_argument("--tracemalloc", action="store_true", help="also report tracemalloc's peak (slower)")
    ap.add_argument("--audit", type=int, default=300, help="faces audited per dataset (0: no audits)")
    ap.add_argument("--validation", type=int, default=20_000, help="validation rows per table (0: none)")
    args = ap.parse_args()
    per_identity = 0 if args.no_identity else args.per_identity
    attributes = list(MAADFACE_ATTRIBUTES[:args.attributes])
    logging.basicConfig(level=logging.WARNING)

    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from facemac.analysis.run import run

    with tempfile.TemporaryDirectory(prefix="facemac-analyze-bench-") as scratch:
        tmp = Path(scratch)
        data = args.data or tmp
        t0 = time.perf_counter()
        if not (data / "annotations").exists():
            generate(data, args.datasets, args.rows, attributes, per_identity, args.part_rows, seed=0)
        dirs = sorted(p for p in (data / "annotations").iterdir() if p.is_dir())
        for k, d in enumerate(dirs):
            if args.validation and not (d / "validation.parquet").exists():
                add_validation(d, attributes, args.validation, seed=100 + k)
            if args.audit and not (data / f"audit{args.audit}" / f"{d.name}.csv").exists():
                write_audit(d, data / f"audit{args.audit}", attributes, args.audit, seed=200 + k)
        gen_s = time.perf_counter() - t0
        rss_after_gen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        overrides = ["logger=none", f"annotations={data / 'annotations'}", f"analyze.n_boot={args.n_boot}"]
        if args.audit:
            overrides.append(f"analyze.audit={data / f'audit{args.audit}'}")
        if args.joint is not None:
            overrides.append(f"analyze.joint_attributes=[{','.join(attributes[:args.joint])}]")
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="analyze", overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp / "run")
            cfg.hydra.job.num = 0
            cfg.paths.log_dir = str(tmp / "outputs")
        HydraConfig.instance().set_config(cfg)
        if args.tracemalloc:
            tracemalloc.start()
        t1 = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        result = run(cfg)
        wall = time.perf_counter() - t1
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        load = os.getloadavg()[0]
        traced = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pairs = result["tables"].kl_pairs
        pooled = pairs[(pairs.p == "real(pooled)") & (pairs.q == "synthetic(pooled)")]
        figures = {
            "datasets": args.datasets, "rows_per_dataset": args.rows, "attributes": args.attributes,
            "images_per_identity": per_identity or None, "n_boot": args.n_boot, "audit_faces": args.audit,
            "validation_rows": args.validation,
            "corrections": sorted(set(result["tables"].rates.correction)),
            "joint_attributes": args.joint or args.attributes,
            "generate_s": round(gen_s, 2), "analysis_wall_s": round(wall, 2), "analysis_cpu_s": round(cpu, 2),
            "load_average_1min": round(load, 2),
            "peak_rss_mib": round(peak_kib / 1024, 1), "peak_rss_after_generation_mib": round(rss_after_gen / 1024, 1),
            "tracemalloc_peak_mib": round(traced / 2**20, 1) if traced is not None else None,
            "kl_mean_real_vs_synth_pooled": round(float(pooled.kl_mean.iloc[0]), 5) if len(pooled) else None,
            "torch_imported": "torch" in sys.modules,  # ~650 MB RSS by itself; the analysis never needs it
        }
        print(f"analysis of {args.datasets} x {args.rows:,} rows x {args.attributes} attributes "
              f"(n_boot={args.n_boot}): {wall:.1f} s wall, {cpu:.1f} s CPU (load {load:.1f}), peak RSS {peak_kib / 1024:.0f} MiB"
              + (f", tracemalloc peak {traced / 2**20:.0f} MiB" if traced is not None else ""))
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
