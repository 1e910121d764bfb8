"""The CPU throughput goals in one run: annotation and training for demo_tiny @64, resnet18 @112 and vit_s @112 with
default settings, several rounds alternating models and stages (load on a shared machine then hits every figure
alike), one markdown table of figures and ratios at the end.

Every row comes from one run of annotate_throughput.py / train_throughput.py, whose own figures (end to end, model only
or fwd+bwd on all cores, naive) are measured in that same process; the suite only collects them. The 1-minute load
average before each run is printed beside it.

    python benchmarks/cpu_suite.py [--rounds 2] [--models demo_tiny,resnet18,vit_s] [--stages annotate,train]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# images per run: enough for several seconds per timed pass on a 2-core CPU, little enough for a few minutes in all
ANNOTATE_IMAGES = {"demo_tiny": 8192, "resnet18": 2048, "vit_s": 1024}
TRAIN_IMAGES = {"demo_tiny": 2048, "resnet18": 512, "vit_s": 256}


def run(cmd: list[str]) -> dict | None:
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, cwd=HERE.parent)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"FAILED: {' '.join(cmd)}\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    print("\n".join(proc.stdout.splitlines()[-9:]), flush=True)
    return {**json.loads(lines[-1]), "load_before": round(load, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", default="demo_tiny,resnet18,vit_s")
    ap.add_argument("--stages", default="annotate,train")
    args = ap.parse_args()
    models, stages = args.models.split(","), args.stages.split(",")
    rows = []
    for r in range(args.rounds):
        order = models if r % 2 == 0 else models[::-1]
        for m in order:
            for stage in (stages if r % 2 == 0 else stages[::-1]):
                if stage == "annotate":
                    cmd = ["benchmarks/annotate_throughput.py", "--model", m, "--images", str(ANNOTATE_IMAGES[m])]
                else:
                    cmd = ["benchmarks/train_throughput.py", "--model", m, "--images", str(TRAIN_IMAGES[m])]
                print(f"\n### round {r + 1}: {stage} {m}", flush=True)
                res = run(cmd)
                if res is not None:
                    rows.append(res)
    print("\n| stage | model | load | resources | reference img/s | end to end | e2e / reference | naive | e2e / naive "
          "| ceiling (any decoder / this input path) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for x in rows:
        if x["bench"] == "annotate":
            res = f"{x['replicas']} x {x['threads']} threads, {x['workers']} workers, {x['amp']}"
            print(f"| annotate | {x['model']} | {max(x['load_before'], x['load1']):.2f} | {res} | "
                  f"{x['model_only_best']} | {x['end_to_end']} | **{x['e2e_over_model']:.2f}** | {x.get('naive')} | "
                  f"**{x.get('e2e_over_naive', float('nan')):.2f}** | {x.get('ceiling_any', float('nan')):.2f} / "
                  f"{x.get('ceiling_this', float('nan')):.2f} |")
        else:
            res = f"{x['workers']} workers, {x['threads']} threads, cache {'on' if x['default_cached'] else 'off'}"
            extra = (f" (amortised over {x['run_epochs']} epochs: {x['cached_amortised_over_ready']:.2f}; uncached "
                     f"{x['uncached_over_ready']:.2f})" if x["default_cached"] else "")
            print(f"| train | {x['model']} | {max(x['load_before'], x['load1']):.2f} | {res} | {x['ready_all_cores']} | "
                  f"{x['e2e_default']} | **{x['default_over_ready']:.2f}**{extra} | | | |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
