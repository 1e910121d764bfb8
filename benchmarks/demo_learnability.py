"""Is every demo attribute learnable? Train a tiny timm CNN from scratch at 64 px for a fixed time and print test
accuracy and balanced accuracy per attribute (the demo renderer's acceptance check; not a test).

  python benchmarks/demo_learnability.py prep --cache DIR --data /tmp/demo64.npz [--workers 2]
  python benchmarks/demo_learnability.py train --data /tmp/demo64.npz --model resnet10t --seconds 180 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np


def _load(paths: list[str], size: int) -> np.ndarray:
    cv2.setNumThreads(1)
    out = np.empty((len(paths), size, size, 3), np.uint8)
    for i, p in enumerate(paths):
        img = cv2.imread(p, cv2.IMREAD_COLOR)[..., ::-1]
        out[i] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return out


def prep(args) -> None:
    """Generate (timed) the default demo, decode it at `size`, save arrays with labels and splits."""
    from facemac.data.demo import ensure_demo

    t = time.perf_counter()
    sizes = {} if args.identities is None else {"celeba_identities": args.identities, "target_identities": 10}
    data = ensure_demo(args.cache, seed=args.seed, workers=args.workers, progress=False, **sizes)
    gen_s = time.perf_counter() - t
    root = data.celeba_root
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    names = lines[1].split()
    rows = [ln.split() for ln in lines[2:]]
    files = [r[0] for r in rows]
    labels = (np.array([[int(v) for v in r[1:]] for r in rows]) > 0).astype(np.uint8)
    split_of = dict(ln.split() for ln in (root / "list_eval_partition.txt").read_text().splitlines())
    splits = np.array([int(split_of[f]) for f in files], np.int8)
    paths = [str(root / "img_align_celeba" / f) for f in files]
    t = time.perf_counter()
    parts = np.array_split(np.arange(len(paths)), 16)
    with ProcessPoolExecutor(args.load_workers) as ex:
        imgs = np.concatenate(list(ex.map(_load, [[paths[i] for i in p] for p in parts], [args.size] * 16)))
    np.savez(args.data, images=imgs, labels=labels, splits=splits, names=np.array(names))
    print(json.dumps({"generate_s": round(gen_s, 1), "decode_s": round(time.perf_counter() - t, 1),
                      "n": len(files), "root": str(data.root)}))


def _metrics(prob: np.ndarray, y: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = prob >= thr
    acc = (pred == y).mean(0)
    pos, neg = y.sum(0), (1 - y).sum(0)
    tpr = (pred & (y == 1)).sum(0) / np.maximum(pos, 1)
    tnr = (~pred & (y == 0)).sum(0) / np.maximum(neg, 1)
    return acc, (tpr + tnr) / 2


def train(args) -> None:
    """Time-budgeted training (cosine LR over the budget), thresholds tuned on val, metrics on test."""
    import timm
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    z = np.load(args.data)
    names = [str(n) for n in z["names"]]
    x_all = torch.from_numpy(z["images"]).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(z["labels"]).float()
    splits = z["splits"]
    tr = torch.from_numpy(np.flatnonzero(splits == 0))
    x_tr, y_tr = x_all[tr].to(dev), y_all[tr].to(dev)
    model = timm.create_model(args.model, pretrained=False, num_classes=len(names)).to(dev)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    pos = y_tr.mean(0).clamp(0.02, 0.98)
    pw = ((1 - pos) / pos).sqrt()  # mild positive-rate weighting, as in the PAR literature
    start, step, seen = time.perf_counter(), 0, 0
    g = torch.Generator(device="cpu").manual_seed(0)
    model.train()
    while True:
        frac = (time.perf_counter() - start) / args.seconds
        if frac >= 1:
            break
        lr = args.lr * (min(1.0, frac / 0.03)) * 0.5 * (1 + math.cos(math.pi * frac))
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = torch.randint(len(tr), (args.batch,), generator=g).to(dev)
        xb = x_tr[idx].float()
        if torch.rand(1, generator=g).item() < 0.5:
            xb = xb.flip(3)
        dx, dy = torch.randint(-3, 4, (2,), generator=g).tolist()
        xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
        xb = ((xb / 255.0) - 0.5) / 0.25
        xb = xb.contiguous(memory_format=torch.channels_last)
        loss = F.binary_cross_entropy_with_logits(model(xb), y_tr[idx], pos_weight=pw)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += args.batch
    train_s = time.perf_counter() - start
    model.eval()

    def predict(split: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.flatnonzero(splits == split)
        out = []
        with torch.no_grad():
            for i in range(0, len(ids), 512):
                xb = x_all[ids[i:i + 512]].to(dev).float()
                xb = (((xb / 255.0) - 0.5) / 0.25).contiguous(memory_format=torch.channels_last)
                out.append(torch.sigmoid(model(xb)).float().cpu().numpy())
        return np.concatenate(out), z["labels"][ids]

    pv, yv = predict(1)
    pt, yt = predict(2)
    grid = np.linspace(0.05, 0.95, 91)
    thr = np.array([grid[np.argmax([_metrics(pv[:, [a]], yv[:, [a]], t)[1][0] for t in grid])]
                    for a in range(len(names))])
    acc5, ba5 = _metrics(pt, yt, 0.5)
    acc, ba = _metrics(pt, yt, thr)
    res = {"model": args.model, "device": args.device, "threads": args.threads, "train_s": round(train_s, 1),
           "steps": step, "images_seen": seen, "epochs": round(seen / len(tr), 2),
           "test_mean_accuracy@0.5": round(float(acc5.mean()), 4), "test_mA@0.5": round(float(ba5.mean()), 4),
           "test_mean_accuracy": round(float(acc.mean()), 4), "test_mA": round(float(ba.mean()), 4),
           "per_attribute": {n: {"acc": round(float(a), 4), "bal_acc": round(float(b), 4),
                                 "acc@0.5": round(float(c), 4)} for n, a, b, c in zip(names, acc, ba, acc5)}}
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prep")
    p.add_argument("--cache", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--load-workers", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--identities", type=int, default=None, help="smaller training set (smoke runs)")
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--model", default="resnet10t")
    t.add_argument("--seconds", type=float, default=180)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--device", default="cpu")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--out", default=None)
    args = ap.parse_args()
    prep(args) if args.cmd == "prep" else train(args)


if __name__ == "__main__":
    main()
