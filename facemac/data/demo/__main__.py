"""python -m facemac.data.demo --out DIR: generate (or find) the demo datasets under DIR/demo/<digest>/."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import fields

from facemac.data.demo import DemoParams, ensure_demo


def main(argv: list[str] | None = None) -> None:
    """Parse the size knobs, build or reuse the cache, print where everything is."""
    parser = argparse.ArgumentParser(prog="python -m facemac.data.demo", description=__doc__)
    parser.add_argument("--out", default=os.environ.get("FACEMAC_CACHE", "~/.cache/facemac"),
                        help="cache folder (the data goes to OUT/demo/<digest>/); default $FACEMAC_CACHE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: all CPUs)")
    for f in fields(DemoParams):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    from facemac.cli.errors import drop_common_flags

    args = parser.parse_args(drop_common_flags(sys.argv[1:] if argv is None else list(argv), "data.demo"))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = {f.name: getattr(args, f.name) for f in fields(DemoParams)}
    start = time.perf_counter()
    data = ensure_demo(args.out, seed=args.seed, workers=args.workers, **params)
    print(f"demo root:   {data.root}  ({time.perf_counter() - start:.1f} s)")
    print(f"celeba_root: {data.celeba_root}")
    for name, path in data.targets.items():
        print(f"target {name}: {path}")


if __name__ == "__main__":
    main()
