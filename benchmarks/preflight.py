"""How long the pipeline's pre-flight takes to refuse the paper experiment without target roots (issue #22 item 3),
against what it saves: before, the same command trained ``experiment=paper`` (30 ViT-B epochs) and only then stopped.

    python benchmarks/preflight.py [--rounds 3]

Prints, per round, the wall time of ``python -m facemac.pipeline experiment=paper dataset.root=<CelebA-layout tree>``
(a subprocess, as a user runs it: interpreter start, imports, three compositions, the checks) and, in process, the
composition alone (``plan``) vs the checks alone (``preflight``); then one JSON line. Timings are never asserted in
tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _celeba(root: Path) -> Path:
    (root / "img_align_celeba").mkdir(parents=True)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt",
                 "list_landmarks_align_celeba.txt"):
        (root / name).write_text("")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from facemac.pipeline import plan, preflight

    with tempfile.TemporaryDirectory() as tmp:
        celeba = _celeba(Path(tmp) / "celeba")
        overrides = ["experiment=paper", f"dataset.root={celeba}"]
        cli, compose, checks = [], [], []
        for r in range(args.rounds):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "facemac.pipeline", *overrides, "--dir",
                                   str(Path(tmp) / f"exp{r}")], cwd=REPO, capture_output=True, text=True)
            cli.append(time.perf_counter() - t0)
            assert proc.returncode == 2, proc.stderr
            problems = len(proc.stderr.strip().splitlines()) - 1
            t0 = time.perf_counter()
            p = plan(overrides, root=Path(tmp) / f"exp{r}")
            compose.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            found = preflight(p)
            checks.append(time.perf_counter() - t0)
            assert sum(len(c.problems) for c in found) == problems
            print(f"round {r}: command refused in {cli[-1]:.2f} s ({problems} problems); in process: compose "
                  f"{compose[-1]:.3f} s, checks {checks[-1] * 1000:.1f} ms")
    med = {k: statistics.median(v) for k, v in (("cli_s", cli), ("compose_s", compose), ("checks_s", checks))}
    print(f"median: command {med['cli_s']:.2f} s, of which checks {med['checks_s'] * 1000:.1f} ms "
          f"({med['checks_s'] / med['cli_s']:.1%}); composing the three configs (done before pre-flight existed "
          f"too) {med['compose_s']:.3f} s")
    print(json.dumps({"benchmark": "preflight", "problems": problems, **{k: round(v, 4) for k, v in med.items()}}))


if __name__ == "__main__":
    main()
