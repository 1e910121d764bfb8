"""Reader throughput at realistic sizes: prints figures, asserts nothing about time.

    python benchmarks/bench_readers.py [--celeba-rows 202599] [--folder-files 100000] [--maad-rows 300000]

CelebA's full attribute/partition/identity/landmark files, an identity-folder tree of empty files (the scan never
opens them) and a MAAD-Face CSV are generated in a temporary folder, then read with facemac's readers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemac.attributes import CELEBA_ATTRIBUTES, MAADFACE_ATTRIBUTES  # noqa: E402
from facemac.data.celeba import read_celeba  # noqa: E402
from facemac.data.folders import read_identity_folders  # noqa: E402
from facemac.data.maadface import read_maadface  # noqa: E402


def write_celeba(base: Path, n: int) -> None:
    (base / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    v = rng.choice([-1, 1], size=(n, 40))
    with open(base / "list_attr_celeba.txt", "w") as f:
        f.write(f"{n}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n")
        for fn, row in zip(files, v):
            f.write(fn + "".join(f"  {x}" if x > 0 else f" {x}" for x in row) + "\n")
    (base / "list_eval_partition.txt").write_text("".join(f"{fn} {i % 3}\n" for i, fn in enumerate(files)))
    (base / "identity_CelebA.txt").write_text("".join(f"{fn} {i % 10177 + 1}\n" for i, fn in enumerate(files)))
    with open(base / "list_landmarks_align_celeba.txt", "w") as f:
        f.write(f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
                "rightmouth_x rightmouth_y\n")
        for fn in files:
            f.write(fn + "   69  109  106  113   77  142   73  152  108  154\n")


def write_folders(base: Path, n: int, per_id: int = 50) -> None:
    for i in range(n):
        d = base / f"group{i % 4}" / f"m.{i // per_id:06d}"
        if i % per_id == 0 or not d.exists():
            d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:07d}.jpg").touch()


def write_maad(base: Path, n: int) -> None:
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    vals = rng.choice(np.array(["1", "-1", "0"]), size=(n, 47))
    with open(base / "MAAD_Face.csv", "w") as f:
        f.write("Filename,Identity," + ",".join(MAADFACE_ATTRIBUTES) + "\n")
        for i in range(n):
            f.write(f"n{i // 300:06d}/{i % 300:04d}_01.jpg,{i // 300}," + ",".join(vals[i]) + "\n")


def timed(label: str, fn) -> None:
    t0 = time.perf_counter()
    table = fn()
    print(f"{label}: {len(table):,} rows x {len(table.attributes)} attributes in {time.perf_counter() - t0:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--celeba-rows", type=int, default=202_599)
    ap.add_argument("--folder-files", type=int, default=100_000)
    ap.add_argument("--maad-rows", type=int, default=300_000)
    args = ap.parse_args()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_celeba(tmp / "celeba", args.celeba_rows)
        timed("read_celeba", lambda: read_celeba(tmp / "celeba"))
        write_folders(tmp / "folders", args.folder_files)
        timed("read_identity_folders (depth 2, auto)", lambda: read_identity_folders(tmp / "folders"))
        write_maad(tmp / "maad", args.maad_rows)
        timed("read_maadface", lambda: read_maadface(tmp / "maad"))


if __name__ == "__main__":
    main()
