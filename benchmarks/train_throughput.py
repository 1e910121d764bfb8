"""Training throughput: images/s end to end (read, decode, warp, augment, step) vs forward+backward on ready tensors.

All figures come from one run on the same images (the demo faces in CelebA layout, with landmarks), the same model
object, batch size and thread settings, with the training loop itself (Trainer.train_epoch). "ready tensors" feeds
the loop uint8 batches held in memory (normalisation on the device, forward, loss, backward, clipping, optimiser step
all included), so the ratio end-to-end / ready says how well the input pipeline keeps the model fed. End to end runs
with and without the decoded cache (train.decoded_cache); each is given one warm-up epoch (worker start, page
cache) and the figure is the mean of the timed epochs after it.

    python benchmarks/train_throughput.py [--images 1024] [--model test_efficientnet] [--input 64] [--batch 64]
        [--workers auto|N] [--threads auto|N] [--epochs 2] [--augment default|none] [--device cpu] [--compile]
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
from facemac.training.data import make_loader  # noqa: E402
from facemac.training.loop.trainer import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def demo_celeba(cache: Path, n: int) -> Path:
    """The demo training set (CelebA layout, 112x112 ArcFace crops + landmarks) with at least n images."""
    from facemac.data.demo import ensure_demo

    d = ensure_demo(cache, celeba_identities=max(8, -(-n // 8)), celeba_images_per_identity=8, target_identities=8,
                    target_images_per_identity=2, progress=False)
    return d.celeba_root


def make_trainer(args, device: torch.device, attributes: int) -> tuple[Trainer, dict]:
    torch.manual_seed(0)
    model = create_mac({"timm_name": args.model, "img_size": args.input, "pretrained": False}, attributes).to(device)
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
    ap.add_argument("--model", default="test_efficientnet", help="timm name (test_efficientnet = model=demo_tiny)")
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", default="auto", help="decode workers: auto (as data.num_workers=auto) | N")
    ap.add_argument("--threads", default="auto", help="torch threads: auto (cores - workers, >= 1) | N")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per pipeline (after one warm-up epoch)")
    ap.add_argument("--augment", default="default", help="conf/augment/<name>.yaml")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    args.workers = D.resolve_workers(args.workers, device, "--workers")
    cores = D.cores_per_local_rank()
    threads = max(1, cores - args.workers) if args.threads == "auto" else int(args.threads)
    if device.type == "cpu":
        torch.set_num_threads(threads)
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
        cfg = OmegaConf.create({"data": {"num_workers": args.workers, "batch_size": args.batch,
                                         "persistent_workers": True, "prefetch_factor": 2}})
        dist = D.DistInfo(device=device)

        # ready tensors: the same images, decoded, warped and augmented once, held as uint8 batches in memory
        plain = FaceDataset(table, pre, augment)
        ready = [collate_faces([plain[i] for i in range(s, min(s + args.batch, len(table)))])
                 for s in range(0, len(table) - args.batch + 1, args.batch)]  # full batches, like drop_last
        trainer, _ = make_trainer(args, device, len(table.attributes))
        epoch_rate(trainer, ready[:3], keys, 0)  # warm-up (allocator, oneDNN kernels, compilation)
        ready_rates = [epoch_rate(trainer, ready, keys, e) for e in range(args.epochs)]

        t0 = time.perf_counter()
        cache = open_or_build(table, pre, work / "cache", "bench", workers=max(args.workers, 1), progress=False)
        build_s = time.perf_counter() - t0
        results = {}
        for name, ds in (("uncached", plain), ("decoded cache", CachedFaceDataset(table, cache, augment))):
            loader = make_loader(ds, cfg, dist, train=True, seed=0)
            trainer, _ = make_trainer(args, device, len(table.attributes))
            epoch_rate(trainer, loader, keys, 0)  # warm-up epoch: worker start-up, page cache
            results[name] = [epoch_rate(trainer, loader, keys, e) for e in range(1, args.epochs + 1)]
            del loader
        ready_rates += [epoch_rate(trainer, ready, keys, e) for e in range(args.epochs)]  # after: load drift shows
        if device.type == "cpu" and threads != cores:
            torch.set_num_threads(cores)
            trainer, _ = make_trainer(args, device, len(table.attributes))
            epoch_rate(trainer, ready[:3], keys, 0)
            all_cores = float(np.mean([epoch_rate(trainer, ready, keys, e) for e in range(args.epochs)]))
        else:
            all_cores = None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = max(load, os.getloadavg()[0])
    ready_rate = float(np.mean(ready_rates))
    unc, cac = float(np.mean(results["uncached"])), float(np.mean(results["decoded cache"]))
    print(f"device={device} model={args.model} input={args.input} batch={args.batch} workers={args.workers} "
          f"threads={threads} augment={args.augment} images={len(table)} epochs={args.epochs} load={load:.2f}")
    print(f"{'pipeline':44s} {'img/s':>8s} {'ratio':>6s}")
    print(f"{'forward+backward on ready tensors':44s} {ready_rate:8.1f} {1.0:6.2f}")
    print(f"{'end to end, decode every epoch':44s} {unc:8.1f} {unc / ready_rate:6.2f}")
    print(f"{'end to end, decoded cache':44s} {cac:8.1f} {cac / ready_rate:6.2f}")
    if all_cores is not None:
        print(f"{f'ready tensors, {cores} threads':44s} {all_cores:8.1f} {all_cores / ready_rate:6.2f}")
    print(f"(cache build: {build_s:.1f} s = {len(table) / build_s:.0f} img/s; ready per epoch "
          f"{', '.join(f'{r:.0f}' for r in ready_rates)})")
    print(json.dumps({"bench": "train", "device": str(device), "model": args.model, "input": args.input,
                      "batch": args.batch, "workers": args.workers, "threads": threads, "augment": args.augment,
                      "images": len(table), "load1": round(load, 2), "ready": round(ready_rate, 1),
                      "e2e_uncached": round(unc, 1), "e2e_cached": round(cac, 1),
                      "uncached_over_ready": round(unc / ready_rate, 3), "cached_over_ready": round(cac / ready_rate, 3),
                      "ready_all_cores": None if all_cores is None else round(all_cores, 1),
                      "cache_build_img_s": round(len(table) / build_s, 1)}))


if __name__ == "__main__":
    main()
