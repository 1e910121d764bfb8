"""Builders shared by the annotation tests: a tiny checkpoint per the contract and small identity-folder trees."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from facemac.models.mac import create_mac
from facemac.checkpoint import save_checkpoint

ATTRS = ["Male", "Smiling", "Eyeglasses"]


def make_checkpoint(path: Path, *, timm_name: str = "test_resnet", size: int = 32, drop_rate: float = 0.0,
                    seed: int = 0, attributes: list[str] | None = None, align: str = "arcface",
                    counting: list[float] | None = None) -> Path:
    """A randomly initialised MAC saved exactly like training saves best.pt (``counting``: its counting thresholds;
    None = a checkpoint from before they existed)."""
    attributes = attributes or ATTRS
    torch.manual_seed(seed)
    model_cfg = {"timm_name": timm_name, "img_size": size, "drop_rate": drop_rate, "pretrained": False}
    model = create_mac(model_cfg, len(attributes)).eval()
    with torch.no_grad():  # a little spread in the outputs so thresholds matter
        model.head.bias.copy_(torch.linspace(-1, 1, len(attributes)))
    payload = {
        "model_state": model.state_dict(), "attributes": attributes, "thresholds": [0.5] * len(attributes),
        "model_cfg": model_cfg,
        "data_cfg": {"input_size": [3, size, size], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                     "align": align, "geometry": "arcface_112"},
        "metrics": {}, "epoch": 0, "step": 0,
    }
    if counting is not None:
        payload.update(counting_thresholds=list(counting), counting_rule="accuracy")
    return save_checkpoint(payload, path)


def make_folders(root: Path, identities: int = 3, per_identity: int = 4, nested: bool = False, size: int = 40,
                 seed: int = 0, broken: int = 0) -> list[str]:
    """<root>/<id>/*.png (or <root>/<group>/<id>/*.png) with random pixels; ``broken`` extra unreadable files."""
    rng = np.random.default_rng(seed)
    keys = []
    for i in range(identities):
        rel = (f"g{i % 2}/" if nested else "") + f"id{i:03d}"
        (root / rel).mkdir(parents=True, exist_ok=True)
        for j in range(per_identity):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            cv2.imwrite(str(root / rel / f"{j:03d}.png"), img)
            keys.append(f"{rel}/{j:03d}.png")
    for b in range(broken):
        (root / f"id{b:03d}").mkdir(parents=True, exist_ok=True)
        (root / f"id{b:03d}" / f"zz_broken{b}.jpg").write_bytes(b"not an image at all")
    return keys


def kill_9_after_parts(cmd: list[str], cwd: Path, ann: Path, parts: int = 1, timeout_s: float = 300) -> int:
    """Start ``cmd``, SIGKILL it once ``ann`` holds ``parts`` part files (a kill -9 mid-annotation), and return how
    many part files were there when it died; fails if the command exits first or no part appears in time."""
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while len(list(ann.glob("part-*.parquet"))) < parts:
        assert proc.poll() is None, f"annotate exited early: {proc.stderr.read().decode()[-3000:]}"
        assert time.monotonic() < deadline, f"no part appeared within {timeout_s:.0f} s"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return len(list(ann.glob("part-*.parquet")))
