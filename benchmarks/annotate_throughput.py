"""Annotation throughput: images/s end to end (read, decode, preprocess, infer, write Parquet) vs model alone.

Both figures come from the same run, the same images, the same model object and batch size; the model-only figure
runs Annotator.predict (uint8 → device normalisation → forward → sigmoid) on tensors decoded beforehand. A ratio near
1 means the input pipeline keeps the model fed.

    python benchmarks/annotate_throughput.py [--images 1024] [--model resnet18] [--input 112] [--batch 64]
                                             [--workers 2] [--threads N] [--device cpu] [--amp off]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemac.annotation.dist import DistInfo  # noqa: E402
from facemac.annotation.inference import Annotator, pick_device  # noqa: E402
from facemac.annotation.run import annotate_target  # noqa: E402
from facemac.annotation.targets import TargetSpec, load_target_table  # noqa: E402
from facemac.data.dataset import FaceDataset, collate_faces  # noqa: E402
from facemac.models.mac import create_mac  # noqa: E402
from facemac.training.checkpoint import file_sha256, save_checkpoint  # noqa: E402


def make_dataset(root: Path, n: int, per_identity: int = 16, size: int = 112, seed: int = 0) -> None:
    """n JPEG faces-sized images (smooth noise, so JPEG sizes are realistic) in identity folders."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for i in range(n):
        d = root / f"id{i // per_identity:05d}"
        d.mkdir(parents=True, exist_ok=True)
        img = cv2.resize(np.roll(base, i, axis=0), (size, size), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 24, img.shape, dtype=np.uint8))
        cv2.imwrite(str(d / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def make_ckpt(path: Path, model: str, size: int, attributes: int = 40) -> Path:
    model_cfg = {"timm_name": model, "img_size": size, "drop_rate": 0.1, "pretrained": False}
    mac = create_mac(model_cfg, attributes)
    return save_checkpoint({
        "model_state": mac.state_dict(), "attributes": [f"attr{i:02d}" for i in range(attributes)],
        "thresholds": [0.5] * attributes, "model_cfg": model_cfg,
        "data_cfg": {"input_size": [3, size, size], "mean": [0.5] * 3, "std": [0.5] * 3, "align": "arcface",
                     "geometry": "arcface_112"}, "metrics": {}, "epoch": 0, "step": 0}, path)


def model_only_rate(ann: Annotator, batches: list[torch.Tensor], n: int) -> float:
    """Images/s of Annotator.predict alone over pre-decoded uint8 batches."""
    sync = torch.cuda.synchronize if ann.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for b in batches:
        ann.predict(b)
    sync()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--input", type=int, default=112)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", default="auto")
    ap.add_argument("--channels-last", default="auto")
    ap.add_argument("--mc", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="facemac-bench-"))
    try:
        make_dataset(work / "data", args.images)
        ck = make_ckpt(work / "m.pt", args.model, args.input)
        device = pick_device(args.device)
        cl = args.channels_last if args.channels_last == "auto" else args.channels_last.lower() == "true"
        ann = Annotator.from_checkpoint(ck, device, amp=args.amp, channels_last=cl, mc_samples=args.mc)
        spec = TargetSpec("bench", "real", "folders", str(work / "data"), "arcface_112")
        table = load_target_table(spec, work)

        # model alone: the same images, decoded and preprocessed beforehand, in the same batches
        ds = FaceDataset(table, ann.preprocessor)
        batches = [collate_faces([ds[i] for i in range(s, min(s + args.batch, len(ds)))])["image"]
                   for s in range(0, len(ds), args.batch)]
        ann.predict(batches[0])  # warm-up (allocator, oneDNN/cuDNN kernels)
        before = model_only_rate(ann, batches, len(ds))

        acfg = OmegaConf.create({"batch_size": args.batch, "num_workers": args.workers, "shard_size": 4096,
                                 "mc_samples": args.mc, "max_failure_fraction": 0.05})
        info = {"checkpoint": str(ck), "checkpoint_sha256": file_sha256(ck)}
        t0 = time.perf_counter()
        res = annotate_target(spec, table, ann, work / "out", acfg, info, DistInfo())
        wall = time.perf_counter() - t0
        e2e = res.processed / res.seconds
        after = model_only_rate(ann, batches, len(ds))  # before and after: load drift on a shared CPU shows up
        model_only = (before + after) / 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"device={device} model={args.model} input={args.input} batch={args.batch} workers={args.workers} "
          f"threads={torch.get_num_threads()} amp={ann.amp_dtype} channels_last={ann.channels_last} mc={args.mc}")
    print(f"images: {len(table)}")
    print(f"model only (decoded tensors): {model_only:9.1f} img/s   (before {before:.1f}, after {after:.1f})")
    print(f"end to end (read..Parquet):   {e2e:9.1f} img/s   (incl. manifest and hashing: "
          f"{res.processed / wall:.1f} img/s)")
    print(f"ratio end-to-end / model-only: {e2e / model_only:.2f}")


if __name__ == "__main__":
    main()
