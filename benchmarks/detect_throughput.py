"""``geometry: detect`` figures: throughput of detect + align + annotate, and what detection costs in accuracy.

Throughput (default): loose demo photos (``facemac.data.demo.loose``, face anywhere on canvases of assorted sizes),
the same images and threads for every figure of one run:

* **e2e**: ``annotate_target`` on a ``geometry: detect`` table with annotate.py's defaults (read, decode, detect in
  size buckets, ArcFace warp, model, Parquet);
* **detector only**: the same detector on the same images decoded beforehand, in batches of the same size, laid out
  as the engine runs it (N inference threads x cores/N torch threads) and as one thread with every core; the better
  one is the reference (goal: e2e >= 0.8 x detector only);
* **naive**: research code as usually written: PIL open, ``facenet_pytorch.MTCNN().detect`` one image at a time,
  warp, the model on each face, torch's default threads (goal: e2e >= 1.5 x naive), on a subset (it is slow).

Accuracy (``--accuracy --ckpt <best.pt>``, a trained demo MAC): loose targets of two demo profiles in two layouts,
annotated once with ``geometry: detect`` and once with the drawn (true) landmarks (``landmarks:``), scored against
their labels.csv; prints the detection rate, the landmark error and both accuracies side by side.

    python benchmarks/detect_throughput.py [--images 256] [--layout assorted|celeba] [--batch 128] [--naive 48]
        [--rounds 2] [--model demo_tiny] [--device cpu|cuda]
    python benchmarks/detect_throughput.py --accuracy --ckpt outputs/train/runs/<run>/checkpoints/best.pt
        [--identities 60] [--images-per-identity 8]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import model_spec  # noqa: E402
from facemac.annotation.evaluate import evaluate_dataset  # noqa: E402
from facemac.annotation.inference import Annotator  # noqa: E402
from facemac.annotation.run import annotate_target  # noqa: E402
from facemac.settings.annotate import AnnotateSettings  # noqa: E402
from facemac.annotation.targets import TargetSpec, load_target_table  # noqa: E402
from facemac.annotation_table import DETECT_COLUMNS  # noqa: E402
from facemac.checkpoint import save_checkpoint  # noqa: E402
from facemac.data.decode import decode_image  # noqa: E402
from facemac.data.demo.loose import write_loose_target  # noqa: E402
from facemac.data.detect import shared_detector, DetectorSettings, pick_face  # noqa: E402
from facemac.data.preprocess import similarity_transform  # noqa: E402
from facemac.distributed import DistInfo, cores_per_local_rank, pick_device  # noqa: E402
from facemac.hashing import file_sha256  # noqa: E402
from facemac.models.mac import create_mac  # noqa: E402
from facemac.resources import apply_threads, plan_cpu  # noqa: E402


def make_ckpt(path: Path, timm_name: str, size: int, attributes: int = 24) -> Path:
    mcfg = {"timm_name": timm_name, "img_size": size, "drop_rate": 0.0, "pretrained": False}
    mac = create_mac(mcfg, attributes)
    return save_checkpoint({
        "model_state": mac.state_dict(), "attributes": [f"attr{i:02d}" for i in range(attributes)],
        "thresholds": [0.5] * attributes, "model_cfg": mcfg,
        "data_cfg": {"input_size": [3, size, size], "mean": [0.5] * 3, "std": [0.5] * 3, "align": "arcface",
                     "geometry": "loose"}, "metrics": {}, "epoch": 0, "step": 0}, path)


def acfg(batch: int, plan, **extra) -> AnnotateSettings:
    return AnnotateSettings(batch_size=batch, num_workers=plan.workers, shard_size=4096, mc_samples=0,
                            max_failure_fraction=1.0, replicas=plan.replicas, gpu_decode="auto", gpu_verify=True,
                            **extra)


def annotate_one(name: str, root: Path, geometry: str | None, ann: Annotator, out: Path, batch: int, plan,
                 landmarks: Path | None = None):
    options = {"depth": 1}
    if landmarks is not None:
        options["landmarks"] = str(landmarks)
    spec = TargetSpec(name=name, group="real", format="folders", root=str(root), geometry=geometry, options=options)
    table = load_target_table(spec, out)
    ck = {"checkpoint": "bench", "checkpoint_sha256": "bench"}
    res = annotate_target(spec, table, ann, out, acfg(batch, plan), ck, DistInfo(device=ann.device))
    return table, res


def detector_only(images: list[np.ndarray], batch: int, replicas: int, threads: int, cores: int, device) -> dict:
    """Images/s of the detector alone on pre-decoded images: one thread with every core, and the engine's layout."""
    det = shared_detector(DetectorSettings(), device)
    chunks = [images[s:s + batch] for s in range(0, len(images), batch)]
    out = {}
    for name, r, t in ((f"1x{cores}", 1, cores), (f"{replicas}x{threads}", replicas, threads)):
        if name in out:
            continue
        torch.set_num_threads(t)
        det.detect(chunks[0][:4])
        t0 = time.perf_counter()
        if r == 1:
            for c in chunks:
                det.detect(c)
        else:
            with ThreadPoolExecutor(r) as pool:
                list(pool.map(det.detect, chunks))
        out[name] = len(images) / (time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return out


def naive(paths: list[Path], ann: Annotator, default_threads: int) -> float:
    """PIL + facenet_pytorch.MTCNN one image at a time, warp, model per face (what a quick script does)."""
    from facenet_pytorch import MTCNN
    from PIL import Image

    torch.set_num_threads(default_threads)
    dev = ann.device
    mtcnn = MTCNN(keep_all=True, device=dev)
    model, s = ann.plain_model, ann.preprocessor.size
    mean, std = torch.tensor(ann.mean, device=dev).view(1, 3, 1, 1), torch.tensor(ann.std, device=dev).view(1, 3, 1, 1)
    t0 = time.perf_counter()
    with torch.no_grad():
        for p in paths:
            img = np.asarray(Image.open(p).convert("RGB"))
            boxes, probs, points = mtcnn.detect(img, landmarks=True)
            if boxes is None:
                continue
            j = pick_face(np.asarray(boxes, float), np.asarray(probs, float), *img.shape[:2])
            face = cv2.warpAffine(img, similarity_transform(np.asarray(points[j], float), ann.preprocessor.template),
                                  (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            x = (torch.from_numpy(face).to(dev).permute(2, 0, 1)[None].float() / 255 - mean) / std
            torch.sigmoid(model(x)).cpu()
    return len(paths) / (time.perf_counter() - t0)


def throughput(args) -> None:
    timm_name, size = model_spec(args.model, None)
    cores = cores_per_local_rank()
    default_threads = torch.get_num_threads()
    device = pick_device(args.device)
    plan = plan_cpu("annotate", "auto", "auto", device, replicas="auto")
    apply_threads(plan)
    threads = plan.threads or default_threads
    work = Path(tempfile.mkdtemp(prefix="facemac-detect-bench-"))
    load = os.getloadavg()[0]
    target = write_loose_target(work / "photos", identities=-(-args.images // 8), images=8, layout=args.layout,
                                progress=False)
    ann = Annotator.from_checkpoint(make_ckpt(work / "m.pt", timm_name, size), device)
    paths = sorted(target.root.glob("*/*.jpg"))[:args.images]
    images = [decode_image(p.read_bytes(), str(p)) for p in paths]
    hw = np.array([im.shape[:2] for im in images])
    print(f"{len(paths)} loose demo photos ({args.layout}: {hw[:, 1].min()}-{hw[:, 1].max()} x {hw[:, 0].min()}-"
          f"{hw[:, 0].max()} px), model {timm_name} @{size}, {device}, batch {args.batch}; resources: "
          f"{plan.replicas} inference thread(s) x {threads} torch thread(s), {plan.workers} workers ({plan.why}); "
          f"load {load:.1f}")
    refs, e2es = [], []
    for r in range(args.rounds):  # interleaved rounds: on a shared machine the best of each is the least disturbed
        refs.append(detector_only(images, args.batch, plan.replicas, threads, cores, device))
        _, res = annotate_one("photos", target.root, "detect", ann, work / f"out{r}", args.batch, plan)
        e2es.append(res.images_per_s)
    ref = max(max(x.values()) for x in refs)
    e2e = max(e2es)
    print("detector only (same images, pre-decoded), per round: "
          + "; ".join(", ".join(f"{k} {v:.1f}" for k, v in x.items()) for x in refs) + " img/s")
    print(f"e2e detect + align + annotate + Parquet, per round: {', '.join(f'{v:.1f}' for v in e2es)} img/s "
          f"({res.num_images} faces, {res.num_failures} without a face)")
    print(f"e2e / detector only (best of each): {e2e / ref:.2f}  (goal >= 0.8)")
    if args.naive:
        rate = naive(paths[:args.naive], ann, default_threads)
        print(f"naive per-image loop (PIL + MTCNN.detect + warp + model, {args.naive} images, {default_threads} torch "
              f"threads): {rate:.1f} img/s")
        print(f"e2e / naive: {e2e / rate:.2f}  (goal >= 1.5)")
        if default_threads > 1 and device.type == "cpu":  # the same loop on one thread: what one core does with it
            one = naive(paths[:args.naive], ann, 1)
            print(f"naive on 1 torch thread: {one:.1f} img/s, x {cores} cores if run as {cores} processes = "
                  f"{one * cores:.1f}; e2e / that: {e2e / (one * cores):.2f}")


def accuracy(args) -> None:
    device = pick_device(args.device)
    plan = plan_cpu("annotate", "auto", "auto", device, replicas="auto")
    apply_threads(plan)
    ann = Annotator.from_checkpoint(args.ckpt, device)
    work = Path(tempfile.mkdtemp(prefix="facemac-detect-acc-"))
    print(f"checkpoint {args.ckpt} (sha256 {file_sha256(args.ckpt)[:12]}), {args.identities} x "
          f"{args.images_per_identity} loose photos per target")
    rows = []
    for profile in ("demo_real_a", "demo_synth_b"):
        for layout in ("celeba", "assorted"):
            name = f"{profile}_{layout}"
            t = write_loose_target(work / name, profile, args.identities, args.images_per_identity, seed=1,
                                   layout=layout, progress=False)
            _, res_d = annotate_one(name, t.root, "detect", ann, work / "det", args.batch, plan)
            _, res_t = annotate_one(name, t.root, None, ann, work / "true", args.batch, plan, landmarks=t.landmarks)
            acc_d = evaluate_dataset(work / "det" / name, t.labels)["accuracy"].mean()
            acc_t = evaluate_dataset(work / "true" / name, t.labels)["accuracy"].mean()
            parts = pd.concat([pd.read_parquet(p) for p in sorted((work / "det" / name).glob("part-*.parquet"))])
            truth = pd.read_csv(t.landmarks).set_index("NAME_ID")
            tp = truth.loc[[p.rsplit(".", 1)[0] for p in parts["path"]]].to_numpy(float).reshape(-1, 5, 2)
            got = parts[list(DETECT_COLUMNS[6:])].to_numpy(float).reshape(-1, 5, 2)
            err = np.linalg.norm(got - tp, axis=2).mean(1) / np.linalg.norm(tp[:, 1] - tp[:, 0], axis=1)
            rows.append({"target": name, "images": t.images, "detected": res_d.num_images / t.images,
                         "lm_err_median": np.median(err), "lm_err_p90": np.percentile(err, 90),
                         "acc_detect": acc_d, "acc_true_landmarks": acc_t, "img_s_detect": res_d.images_per_s,
                         "img_s_true": res_t.images_per_s})
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(frame.to_string(index=False))
    print(f"mean accuracy: detect {frame.acc_detect.mean():.4f}, true landmarks {frame.acc_true_landmarks.mean():.4f}"
          f"; detection rate {frame.detected.mean():.3f}; landmark error median {frame.lm_err_median.median():.3f} "
          "eye distances (accuracy on the detected faces; undetected ones are in failures.csv)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--layout", choices=["assorted", "celeba", "square"], default="assorted")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--naive", type=int, default=48, help="images for the naive per-image loop (0: skip it)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved detector-only / e2e rounds (best of each)")
    ap.add_argument("--model", default="demo_tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--ckpt", type=Path, default=None)
    ap.add_argument("--identities", type=int, default=60)
    ap.add_argument("--images-per-identity", type=int, default=8)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.accuracy:
        if args.ckpt is None:
            ap.error("--accuracy needs --ckpt <a trained demo MAC's best.pt>")
        accuracy(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
