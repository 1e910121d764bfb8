"""Annotation throughput: images/s end to end (read, decode, preprocess, infer, write Parquet) vs model alone.

All figures come from the same run, the same images, the same model object (the variant the pipeline runs:
precision, memory format, compilation) and batch size. "Model only" runs Annotator.predict (uint8 → device
normalisation → forward → sigmoid) on tensors decoded beforehand, with **all cores**, laid out two ways: one thread
calling the model with every core as torch threads, and the annotation engine's layout (N inference threads x cores/N
torch threads); the better of the two is the reference. It is measured before and after the end-to-end run, so load
drift on a shared machine shows. The naive baseline is research code as usually written: PIL decode, torchvision
Resize/ToTensor/Normalize on float tensors, a default DataLoader (no workers), torch's default threads, fp32, a CSV at
the end. Resources default to what `annotate.py` picks (facemac/resources.py, printed with the figures).

On a CPU every core either runs the model or prepares its input, so e2e / model-only can never exceed
model / (model + input) in core-seconds per face. The run measures that ceiling too: the model's core-seconds per face
(from the best model-only figure), reading + decoding each stored file on one core (the floor any pipeline that
decodes pays) and annotation's whole input path on one core.

    python benchmarks/annotate_throughput.py [--images 1024] [--data demo|synthetic] [--model demo_tiny|resnet18|vit_s
        |<timm name>] [--input 112] [--batch 128] [--workers auto|N] [--threads auto|N] [--replicas auto|N]
        [--device cpu] [--amp auto|off|bf16] [--compile]
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

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemac.annotation.feed import _load_batch  # noqa: E402
from facemac.annotation.inference import Annotator  # noqa: E402
from facemac.annotation.run import annotate_target  # noqa: E402
from facemac.settings.annotate import AnnotateSettings  # noqa: E402
from facemac.distributed import DistInfo, cores_per_local_rank, pick_device  # noqa: E402
from bench_common import model_spec  # noqa: E402
from facemac.resources import apply_threads, plan_cpu  # noqa: E402
from facemac.annotation.targets import TargetSpec, load_target_table  # noqa: E402
from facemac.data.dataset import FaceDataset, collate_faces  # noqa: E402
from facemac.data.decode import decode_image  # noqa: E402
from facemac.models.mac import create_mac  # noqa: E402
from facemac.checkpoint import save_checkpoint  # noqa: E402
from facemac.hashing import file_sha256  # noqa: E402


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


def model_only_rate(ann: Annotator, batches: list[torch.Tensor], n: int, replicas: int = 1) -> float:
    """Images/s of Annotator.predict alone over pre-decoded uint8 batches, from ``replicas`` threads at once (each
    with the torch threads set now)."""
    sync = torch.cuda.synchronize if ann.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    if replicas <= 1:
        for b in batches:
            ann.predict(b)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(replicas) as pool:
            list(pool.map(ann.predict, batches))
    sync()
    return n / (time.perf_counter() - t0)


def best_model_only(ann: Annotator, batches: list[torch.Tensor], n: int, cores: int, replicas: int,
                    threads: int) -> dict[str, float]:
    """The model with all cores, as one thread with every core and as the engine's replicas x threads layout."""
    out = {}
    torch.set_num_threads(cores)
    ann.predict(batches[0])  # kernels for this thread count
    out[f"1x{cores}"] = model_only_rate(ann, batches, n)
    if replicas > 1:
        torch.set_num_threads(threads)
        ann.predict(batches[0])
        out[f"{replicas}x{threads}"] = model_only_rate(ann, batches, n, replicas)
    torch.set_num_threads(threads)
    return out


class NaiveDataset(torch.utils.data.Dataset):
    """How most research code reads faces: PIL decode, torchvision float transforms, one sample at a time."""

    def __init__(self, paths: list[Path], size: int, mean: list[float], std: list[float]):
        from torchvision import transforms as T

        self.paths = paths
        self.tf = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        return self.tf(Image.open(self.paths[i]).convert("RGB"))


def input_costs(ds: FaceDataset, batches: list[list[int]], limit: int = 2048) -> tuple[float, float]:
    """Seconds per face on one core of (the floor) reading + decoding the stored bytes, the least any pipeline that
    decodes must spend, and (the pipeline's) everything annotation does before the model: read, checks, decode,
    geometry, the batch buffer (feed._load_batch, what each inference thread runs)."""
    rows = [i for b in batches for i in b][:limit]
    keys, src = ds.table.keys, ds.table.source
    t0 = time.perf_counter()
    for i in rows:
        decode_image(src.read(keys[i]), keys[i])
    floor = (time.perf_counter() - t0) / len(rows)
    t0 = time.perf_counter()
    for s in range(0, len(rows), len(batches[0])):
        _load_batch(ds, rows[s:s + len(batches[0])])
    return floor, (time.perf_counter() - t0) / len(rows)


def naive_rate(ann: Annotator, paths: list[Path], batch: int, out_csv: Path) -> float:
    """Images/s of the naive baseline: default DataLoader (no workers), the plain fp32 model (never compiled),
    probabilities to a CSV."""
    import pandas as pd

    loader = torch.utils.data.DataLoader(NaiveDataset(paths, ann.preprocessor.size, ann.mean, ann.std),
                                         batch_size=batch)
    model = ann.plain_model
    t0 = time.perf_counter()
    probs = []
    with torch.no_grad():
        for x in loader:
            probs.append(torch.sigmoid(model(x.to(ann.device))).cpu())
    pd.DataFrame(torch.cat(probs).numpy(), columns=ann.attributes).assign(
        file=[str(p) for p in paths]).to_csv(out_csv, index=False)
    return len(paths) / (time.perf_counter() - t0)


def demo_root(cache: Path, n: int) -> Path:
    """A demo target folder (procedural faces, 112x112 ArcFace crops, JPEG) with at least n images."""
    from facemac.data.demo import ensure_demo

    ids = max(8, -(-n // 8))
    d = ensure_demo(cache, celeba_identities=8, celeba_images_per_identity=2, target_identities=ids,
                    target_images_per_identity=8, progress=False)
    return d.targets["demo_real_a"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--data", choices=["demo", "synthetic"], default="demo",
                    help="demo: procedural demo faces (generated once under --cache); synthetic: noise JPEGs")
    ap.add_argument("--cache", default=None, help="demo cache folder (default: $FACEMAC_CACHE or ~/.cache/facemac)")
    ap.add_argument("--model", default="resnet18", help="conf/model name (demo_tiny, resnet18, vit_s) or timm name")
    ap.add_argument("--input", type=int, default=None, help="input size (default: the conf/model one, else 112)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", default="auto", help="decode workers: auto (as annotate.num_workers) | N")
    ap.add_argument("--threads", default="auto", help="torch threads: auto (as annotate.num_threads) | N")
    ap.add_argument("--replicas", default="auto", help="inference threads: auto (as annotate.replicas) | N")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", default="auto")
    ap.add_argument("--channels-last", default="auto")
    ap.add_argument("--gpu-decode", default="auto", help="annotate.gpu_decode: auto (nvJPEG + GPU warp on CUDA) | "
                    "true | false")
    ap.add_argument("--gpu-verify", default="true", help="annotate.gpu_verify: strict 1/8-scale check in workers")
    ap.add_argument("--mc", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (annotate.compile=true)")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive PIL/torchvision baseline")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.timm, args.input = model_spec(args.model, args.input)
    cores = cores_per_local_rank()
    default_threads = torch.get_num_threads()
    device = pick_device(args.device)
    plan = plan_cpu("annotate", args.workers, args.threads, device, replicas=args.replicas, serial=args.mc > 0,
                    keys=("--workers", "--threads", "--replicas"))
    apply_threads(plan)
    threads = plan.threads or default_threads
    args.workers = plan.workers
    work = Path(tempfile.mkdtemp(prefix="facemac-bench-"))
    load = os.getloadavg()[0]
    try:
        if args.data == "demo":
            root = demo_root(Path(args.cache or os.environ.get("FACEMAC_CACHE", "~/.cache/facemac")).expanduser(),
                             args.images)
        else:
            root = work / "data"
            make_dataset(root, args.images)
        ck = make_ckpt(work / "m.pt", args.timm, args.input)
        cl = args.channels_last if args.channels_last == "auto" else args.channels_last.lower() == "true"
        ann = Annotator.from_checkpoint(ck, device, amp=args.amp, channels_last=cl, mc_samples=args.mc,
                                        compile=args.compile)
        spec = TargetSpec("bench", "real", "folders", str(root), "arcface_112")
        table = load_target_table(spec, work)
        table = table.subset(np.arange(min(args.images, len(table))))

        # model alone: the same images, decoded and preprocessed beforehand, in the same batches
        ds = FaceDataset(table, ann.preprocessor)
        batches = [collate_faces([ds[i] for i in range(s, min(s + args.batch, len(ds)))])["image"]
                   for s in range(0, len(ds), args.batch)]
        t0 = time.perf_counter()
        ann.predict(batches[0])  # warm-up (allocator, oneDNN/cuDNN kernels, compilation)
        warmup = time.perf_counter() - t0
        on_cpu = device.type == "cpu"
        layout = (cores, plan.replicas, threads)
        before = best_model_only(ann, batches, len(ds), *layout) if on_cpu else {"1xgpu": model_only_rate(
            ann, batches, len(ds))}

        acfg = AnnotateSettings(batch_size=args.batch, num_workers=args.workers, shard_size=4096, mc_samples=args.mc,
                                max_failure_fraction=0.05, replicas=plan.replicas, gpu_decode=args.gpu_decode,
                                gpu_verify=args.gpu_verify.lower() == "true")
        info = {"checkpoint": str(ck), "checkpoint_sha256": file_sha256(ck)}
        t0 = time.perf_counter()
        res = annotate_target(spec, table, ann, work / "out", acfg, info, DistInfo(device=device))
        wall = time.perf_counter() - t0
        e2e = res.processed / res.seconds
        after = best_model_only(ann, batches, len(ds), *layout) if on_cpu else {"1xgpu": model_only_rate(
            ann, batches, len(ds))}  # before and after: load drift on a shared CPU shows up
        model_runs = {k: (before[k] + after[k]) / 2 for k in before}
        best_layout = max(model_runs, key=model_runs.get)
        model_only = model_runs[best_layout]
        floor_s, input_s = input_costs(ds, [list(range(s, min(s + args.batch, len(ds))))
                                            for s in range(0, len(ds), args.batch)])
        naive = None
        if not args.no_naive:  # research-code style: torch's default threads, no workers, fp32, float transforms
            torch.set_num_threads(default_threads)
            paths = [Path(root) / k for k in table.keys]
            naive = naive_rate(ann, paths, args.batch, work / "naive.csv")
            torch.set_num_threads(threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = max(load, os.getloadavg()[0])
    print(f"device={device} model={args.model} ({args.timm}) input={args.input} batch={args.batch} "
          f"amp={ann.amp_dtype} channels_last={ann.channels_last} mc={args.mc} compile={args.compile} "
          f"gpu_decode={args.gpu_decode} gpu_verify={args.gpu_verify} "
          f"data={args.data} images={len(table)} cores={cores} load={load:.2f}")
    print(f"resources: {plan.describe()} ({plan.why})")
    print(f"{'pipeline':48s} {'img/s':>9s} {'ratio':>6s}")
    for k, v in model_runs.items():
        tag = "best" if k == best_layout else ""
        print(f"{f'model only, {k} (threads x torch threads) {tag}':48s} {v:9.1f}")
    print(f"{'end to end (read..Parquet)':48s} {e2e:9.1f} {e2e / model_only:6.2f}  (e2e / best model only)")
    if naive is not None:
        print(f"{'naive (PIL + torchvision, fp32, default threads)':48s} {naive:9.1f} {e2e / naive:6.2f}  "
              "(e2e / naive)")
    if on_cpu:  # the most any engine can reach: every core runs the model or the input work, nothing idles
        model_core = cores / model_only
        ceiling_any, ceiling_this = (model_core / (model_core + x) for x in (floor_s, input_s))
        print(f"ceiling on this CPU: the model costs {model_core * 1e6:.0f} core-us/face (best model only), reading + "
              f"decoding the stored file {floor_s * 1e6:.0f} us/face on 1 core, all of annotation's input work "
              f"{input_s * 1e6:.0f}: e2e / model only <= {ceiling_any:.2f} for any pipeline that decodes, "
              f"<= {ceiling_this:.2f} with this input path")
    print("(model only before " + ", ".join(f"{k} {v:.1f}" for k, v in before.items()) + "; after "
          + ", ".join(f"{k} {v:.1f}" for k, v in after.items())
          + f"; end to end incl. manifest {res.processed / wall:.1f}; first batch {warmup:.1f} s)")
    figures = {"bench": "annotate", "device": str(device), "model": args.model, "timm": args.timm,
               "input": args.input, "batch": args.batch, "workers": args.workers, "threads": threads,
               "replicas": plan.replicas, "amp": str(ann.amp_dtype), "channels_last": ann.channels_last,
               "compile": args.compile, "gpu_decode": args.gpu_decode, "images": len(table), "load1": round(load, 2),
               "first_batch_s": round(warmup, 2), "model_only": {k: round(v, 1) for k, v in model_runs.items()},
               "model_only_best": round(model_only, 1), "end_to_end": round(e2e, 1),
               "e2e_over_model": round(e2e / model_only, 3)}
    if naive is not None:
        figures.update(naive=round(naive, 1), e2e_over_naive=round(e2e / naive, 3))
    figures.update(input_floor_us=round(floor_s * 1e6, 1), input_us=round(input_s * 1e6, 1))
    if on_cpu:
        figures.update(model_core_us=round(model_core * 1e6, 1), ceiling_any=round(ceiling_any, 3),
                       ceiling_this=round(ceiling_this, 3))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
