"""The default augmentation written straight in OpenCV/NumPy: same transforms and parameter ranges as the
albumentations pipeline (flip, small affine with replicated borders, brightness/contrast/saturation jitter in random
order, optional Gaussian blur) at about half the per-image cost (0.13 vs 0.26-0.36 ms per 64 px face on the 2-core
benchmark box: albumentations' per-call bookkeeping costs more than the pixel work at face-crop sizes).

Callable like an albumentations Compose: ``aug(image=img)["image"]``. Random draws come from a counter-based NumPy
generator (Philox, keyed by ``seed``). Training restarts it for every sample at a counter made of (epoch, index)
(``reseed``, from facemac.data.dataset.FaceItems), so a face's augmentation does not depend on which process draws
it, how many workers there are or where a run was resumed. Used without that (a plain ``aug(image=...)`` loop), a
forked DataLoader worker re-seeds from ``torch.initial_seed()``, so workers never repeat each other's draws.
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np

_MASK64 = 2**64 - 1

cv2.setNumThreads(1)  # per-image work in DataLoader workers: OpenCV's own threads would only oversubscribe

class FastAugment:
    """uint8 HxWx3 → uint8 HxWx3 with the configured probabilities and ranges."""

    def __init__(self, hflip: float = 0.0, affine: dict[str, Any] | None = None, color: dict[str, Any] | None = None,
                 blur: dict[str, Any] | None = None, seed: int | None = None):
        self.hflip = float(hflip)
        self.affine = dict(affine or {})
        self.color = dict(color or {})
        self.blur = dict(blur or {})
        self.seed = seed
        self._pid = os.getpid()
        self._rng = np.random.Generator(np.random.Philox(seed))
        self._fresh_state = {"bit_generator": "Philox",
                             "state": {"counter": np.zeros(4, dtype=np.uint64),
                                       "key": np.array([int(seed or 0) & _MASK64, 0], dtype=np.uint64)},
                             "buffer": np.zeros(4, dtype=np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}

    def _generator(self) -> np.random.Generator:
        pid = os.getpid()
        if pid != self._pid:  # a forked DataLoader worker: its own stream, reproducible from the loader's seed
            import torch

            self.reseed(torch.initial_seed())
        return self._rng

    def reseed(self, value: int) -> None:
        """Restart the stream at counter ``value`` under key ``seed`` (2 µs: no seed hashing, unlike default_rng's
        10). Philox streams at different counters do not overlap for the few dozen numbers one face draws."""
        v = int(value) % 2**128
        state = self._fresh_state
        state["state"]["counter"][2:] = (v & _MASK64, v >> 64)
        self._rng.bit_generator.state = state  # copied in; the dict and its arrays are reused
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:  # spawned workers re-seed too
        return {**self.__dict__, "_pid": -1}

    def __call__(self, image: np.ndarray, **_: Any) -> dict[str, np.ndarray]:
        rng = self._generator()
        img = image
        if self.hflip > 0 and rng.random() < self.hflip:
            img = cv2.flip(img, 1)
        if float(self.affine.get("p", 0.0)) > 0 and rng.random() < float(self.affine["p"]):
            img = self._affine(img, rng)
        if float(self.color.get("p", 0.0)) > 0 and rng.random() < float(self.color["p"]):
            img = self._color(img, rng)
        if float(self.blur.get("p", 0.0)) > 0 and rng.random() < float(self.blur["p"]):
            k = int(rng.choice(np.arange(3, int(self.blur.get("max_kernel", 3)) + 1, 2)))
            img = cv2.GaussianBlur(img, (k, k), 0)
        return {"image": img}

    def _affine(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        lo, hi = self.affine.get("scale", (0.95, 1.05))
        t = float(self.affine.get("translate", 0.03))
        r = float(self.affine.get("rotate", 5))
        scale, angle = rng.uniform(float(lo), float(hi)), rng.uniform(-r, r)
        dx, dy = rng.uniform(-t, t) * w, rng.uniform(-t, t) * h
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, scale)
        m[:, 2] += (dx, dy)
        return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def _color(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = img.astype(np.float32)
        ops = []
        for name in ("brightness", "contrast", "saturation"):
            v = float(self.color.get(name, 0.0))
            if v > 0:
                ops.append((name, rng.uniform(max(0.0, 1 - v), 1 + v)))
        for j in rng.permutation(len(ops)):
            name, f = ops[j]
            if name == "brightness":
                x *= f
            elif name == "contrast":
                mean = float(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).mean())  # cv2, not x @ w: BLAS threads spin
                x = x * f + mean * (1 - f)
            else:
                gray = cv2.cvtColor(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                x = cv2.addWeighted(x, f, gray, 1 - f, 0.0)
            np.clip(x, 0, 255, out=x)
        return (x + 0.5).astype(np.uint8)
