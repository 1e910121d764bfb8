"""Training throughput: images/s end to end (read, decode, warp, augment, step) vs forward+backward on ready tensors.

All figures come from one run on the same images (the demo faces in CelebA layout, with landmarks), the same model
variant and batch size, with the training loop itself (Trainer.train_epoch). "Ready tensors" feeds the loop uint8
batches held in memory (normalisation on the device, forward, loss, backward, clipping, optimiser step all included)
with **all cores** as torch threads, before and after the end-to-end runs (load drift shows); the ratio end-to-end /
ready says how well the input pipeline keeps the model fed. End to end uses what `train.py` picks with the defaults
(facemac/resources.py: on a CPU the split measured by facemac/training/probe.py, printed with its figures), with and
without the decoded cache; each gets one warm-up epoch (worker start, page cache) and the figure is the mean of the
timed epochs after it. Which of the two the defaults run follows train.decoded_cache=auto
(facemac.training.data.use_decoded_cache, with conf/train.yaml's train.epochs); for the cached one the figure
"amortised" also charges the cache build (every core, as train.py builds it) to a run of train.epochs epochs.

    python benchmarks/train_throughput.py [--images 1024] [--model demo_tiny|resnet18|vit_s|<timm name>] [--input 64]
        [--batch 64] [--workers auto|N] [--threads auto|N] [--epochs 2] [--augment default|none] [--device cpu]
        [--compile] [--no-cache]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemac import distributed as D  # noqa: E402
from facemac.data.augment import build_augment  # noqa: E402
from facemac.data.dataset import FaceDataset, collate_faces  # noqa: E402
from facemac.data.decoded_cache import CachedFaceDataset, open_or_build  # noqa: E402
from facemac.data.preprocess import Preprocessor  # noqa: E402
from facemac.data.registry import build_table  # noqa: E402
from facemac.models.mac import create_mac, model_data_config  # noqa: E402
from facemac.training.data import cache_build_workers, make_loader, use_decoded_cache  # noqa: E402
from bench_common import model_spec  # noqa: E402
from facemac.resources import apply_threads, plan_cpu, refined  # noqa: E402
from facemac.training.loop.trainer import Trainer  # noqa: E402
from facemac.training.probe import measure_costs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def demo_celeba(cache: Path, n: int) -> Path:
    """The demo training set (CelebA layout, 112x112 ArcFace crops + landmarks) with at least n images."""
    from facemac.data.demo import ensure_demo

    d = ensure_demo(cache, celeba_identities=max(8, -(-n // 8)), celeba_images_per_identity=8, target_identities=8,
                    target_images_per_identity=2, progress=False)
    return d.celeba_root



def make_trainer(args, device: torch.device, attributes: int) -> tuple[Trainer, dict]:
    torch.manual_seed(0)
    model = create_mac({"timm_name": args.timm, "img_size": args.input, "pretrained": False}, attributes).to(device)
    dcfg = model_data_config(model, args.input)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    trainer = Trainer(model, opt, None, D.DistInfo(device=device), dcfg["mean"], dcfg["std"], precision="auto",
                      channels_last=True, grad_clip=5.0, progress=False, compile=args.compile)
    return trainer, dcfg


def epoch_rate(trainer: Trainer, loader, keys: list[str], epoch: int) -> float:
    if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    stats = trainer.train_epoch(loader, epoch, keys)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return stats["images"] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--cache", default=None, help="demo cache folder (default: $FACEMAC_CACHE or ~/.cache/facemac)")
    ap.add_argument("--model", default="demo_tiny", help="conf/model name (demo_tiny, resnet18, vit_s) or timm name")
    ap.add_argument("--input", type=int, default=None, help="input size (default: the conf/model one, else 64)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", default="auto", help="decode workers: auto (as data.num_workers) | N")
    ap.add_argument("--threads", default="auto", help="torch threads: auto (as train.cpu_threads) | N")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per pipeline (after one warm-up epoch)")
    ap.add_argument("--augment", default="default", help="conf/augment/<name>.yaml")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-cache", action="store_true", help="skip the decoded-cache pipeline")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.timm, args.input = model_spec(args.model, args.input, default_size=64)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cores = D.cores_per_local_rank()
    plan = plan_cpu("train", args.workers, args.threads, device, keys=("--workers", "--threads", "replicas"))
    load = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="facemac-trainbench-"))
    try:
        root = demo_celeba(Path(args.cache or os.environ.get("FACEMAC_CACHE", "~/.cache/facemac")).expanduser(),
                           args.images)
        full = build_table({"format": "celeba", "root": str(root), "name": "bench"})
        table = full.subset(np.arange(min(args.images, len(full))))
        keys = table.keys
        pre = Preprocessor("arcface", args.input, reduced_decode=True)
        aug_cfg = OmegaConf.load(ROOT / "conf" / "augment" / f"{args.augment}.yaml")
        augment = build_augment(aug_cfg, seed=0)
        plain = FaceDataset(table, pre, augment)
        dist = D.DistInfo(device=device)
        trainer, dcfg = make_trainer(args, device, len(table.attributes))
        provisional = plan
        if plan.measure:  # what train.py does with the defaults on a CPU: measure, then split the cores
            costs = measure_costs(plain, trainer.model, dcfg["mean"], dcfg["std"], "auto", True, device, cores,
                                  n=min(64, args.batch))
            plan = refined(plan, costs)
        apply_threads(plan)
        threads = plan.threads or torch.get_num_threads()
        cfg = OmegaConf.create({"data": {"num_workers": plan.workers, "batch_size": args.batch,
                                         "persistent_workers": True, "prefetch_factor": 2}})

        # ready tensors: the same images, decoded, warped and augmented once, held as uint8 batches in memory
        ready = [collate_faces([plain[i] for i in range(s, min(s + args.batch, len(table)))])
                 for s in range(0, len(table) - args.batch + 1, args.batch)]  # full batches, like drop_last

        def ready_rate(n_threads: int | None) -> list[float]:
            """The Trainer's step on ready batches with ``n_threads`` torch threads (a fresh model each time)."""
            if n_threads and device.type == "cpu":
                torch.set_num_threads(n_threads)
            tr, _ = make_trainer(args, device, len(table.attributes))
            epoch_rate(tr, ready[:3], keys, 0)  # warm-up (allocator, oneDNN kernels, compilation)
            rates = [epoch_rate(tr, ready, keys, e) for e in range(args.epochs)]
            apply_threads(plan)
            return rates

        all_cores = cores if device.type == "cpu" else None
        ready_all = ready_rate(all_cores)
        ready_plan = ready_rate(threads) if device.type == "cpu" and threads != cores else None

        pipelines = [("uncached", plain)]
        build_s = None
        if not args.no_cache:
            t0 = time.perf_counter()
            cache = open_or_build(table, pre, work / "cache", "bench", workers=cache_build_workers(), progress=False)
            build_s = time.perf_counter() - t0
            pipelines.append(("decoded cache", CachedFaceDataset(table, cache, augment)))
        results, plans = {}, {}
        for name, ds in pipelines:
            trainer, _ = make_trainer(args, device, len(table.attributes))
            plans[name] = plan
            if provisional.measure and name != "uncached":  # train.py probes the dataset it trains on
                plans[name] = refined(provisional, measure_costs(ds, trainer.model, dcfg["mean"], dcfg["std"], "auto",
                                                                 True, device, cores, n=min(64, args.batch)))
            apply_threads(plans[name])
            loader = make_loader(ds, OmegaConf.merge(cfg, {"data": {"num_workers": plans[name].workers}}), dist,
                                 train=True, seed=0)
            epoch_rate(trainer, loader, keys, 0)  # warm-up epoch: worker start-up, page cache
            results[name] = [epoch_rate(trainer, loader, keys, e) for e in range(1, args.epochs + 1)]
            del loader
        apply_threads(plan)
        ready_all += ready_rate(all_cores)  # after: load drift shows
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = max(load, os.getloadavg()[0])
    ref = float(np.mean(ready_all))
    unc = float(np.mean(results["uncached"]))
    train_cfg = OmegaConf.load(ROOT / "conf" / "train.yaml")
    run_epochs = int(train_cfg.train.epochs)
    auto_cfg = OmegaConf.create({"train": {"epochs": run_epochs, "decoded_cache": train_cfg.train.decoded_cache},
                                 "data": {"batch_size": args.batch}, "paths": {"cache_dir": tempfile.gettempdir()}})
    cached_default, default_why = use_decoded_cache(auto_cfg, {"train": table}, args.input)
    print(f"device={device} model={args.model} ({args.timm}) input={args.input} batch={args.batch} "
          f"augment={args.augment} images={len(table)} epochs={args.epochs} cores={cores} load={load:.2f}")
    for name, pl in plans.items():
        print(f"resources, {name}: {pl.describe()} ({pl.why})")
    print(f"{'pipeline':48s} {'img/s':>8s} {'ratio':>6s}")
    ref_name = f"forward+backward on ready tensors, {all_cores or 'default'} threads"
    print(f"{ref_name:48s} {ref:8.1f} {1.0:6.2f}")
    if ready_plan is not None:
        rp = float(np.mean(ready_plan))
        print(f"{f'forward+backward on ready tensors, {threads} threads':48s} {rp:8.1f} {rp / ref:6.2f}")
    mark = lambda cached: " (default)" if cached == cached_default else ""  # noqa: E731
    print(f"{'end to end, decode every epoch' + mark(False):48s} {unc:8.1f} {unc / ref:6.2f}")
    cac = amortised = None
    if "decoded cache" in results:
        cac = float(np.mean(results["decoded cache"]))
        amortised = run_epochs * len(table) / (build_s + run_epochs * len(table) / cac)
        print(f"{'end to end, decoded cache' + mark(True):48s} {cac:8.1f} {cac / ref:6.2f}")
        print(f"{f'  amortised: build + {run_epochs} epochs (train.epochs)':48s} {amortised:8.1f} "
              f"{amortised / ref:6.2f}")
    print(f"default: decoded cache {'on' if cached_default else 'off'} (train.decoded_cache="
          f"{train_cfg.train.decoded_cache}: {default_why})")
    print(f"(ready, all cores, per epoch before/after: {', '.join(f'{r:.0f}' for r in ready_all)}"
          + (f"; cache build {build_s:.1f} s = {len(table) / build_s:.0f} img/s with {cache_build_workers()} "
             "workers" if build_s else "") + ")")
    default = cac if cached_default and cac is not None else unc
    dplan = plans["decoded cache" if cached_default and cac is not None else "uncached"]
    print(json.dumps({"bench": "train", "device": str(device), "model": args.model, "timm": args.timm,
                      "input": args.input, "batch": args.batch, "workers": dplan.workers, "threads": dplan.threads or threads,
                      "augment": args.augment, "images": len(table), "load1": round(load, 2),
                      "ready_all_cores": round(ref, 1), "e2e_uncached": round(unc, 1),
                      "uncached_over_ready": round(unc / ref, 3),
                      "e2e_cached": None if cac is None else round(cac, 1),
                      "cached_over_ready": None if cac is None else round(cac / ref, 3),
                      "cached_amortised_over_ready": None if amortised is None else round(amortised / ref, 3),
                      "cache_build_s": None if build_s is None else round(build_s, 2), "run_epochs": run_epochs,
                      "default_cached": cached_default, "e2e_default": round(default, 1),
                      "default_over_ready": round(default / ref, 3),
                      "ready_plan_threads": None if ready_plan is None else round(float(np.mean(ready_plan)), 1)}))


if __name__ == "__main__":
    main()
