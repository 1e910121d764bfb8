"""Write the demo datasets to disk in their real on-disk formats: CelebA layout for training, identity folders for
targets. Rendering runs over chunks of identities in a process pool; every image has its own random stream, so the
bytes on disk do not depend on the number of workers."""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facemac.data.demo.profiles import DEMO_ATTRIBUTES, PROFILES, TARGET_NAMES
from facemac.errors import ConfigError
from facemac.progress import progress_bar

TRAIN_PROFILE = "celeba_demo"
LANDMARK_HEADER = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x "
                   "rightmouth_y")
CHUNK_IDENTITIES = 40
# Landmark error of the aligner that crops the demo targets (std per coordinate, pixels at 112 px; ~3 % of the
# 35-px eye distance): FR datasets are aligned to the ArcFace template by detected 5 points, not perfectly.
DETECTOR_NOISE_PX = 1.0


@dataclass(frozen=True)
class DemoParams:
    """Size knobs of the demo data (conf/demo/default.yaml); any change gives a new cache folder."""

    celeba_identities: int = 1500
    celeba_images_per_identity: int = 8
    target_identities: int = 250
    target_images_per_identity: int = 8
    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        for key in ("celeba_identities", "celeba_images_per_identity", "target_identities",
                    "target_images_per_identity"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"demo.{key} must be a positive integer, got {value!r}")
        for key in ("val_fraction", "test_fraction"):
            if not 0.0 <= float(getattr(self, key)) < 0.5:
                raise ConfigError(f"demo.{key} must be in [0, 0.5), got {getattr(self, key)!r}")
        n_val, n_test = self.split_counts()
        if self.celeba_identities - n_val - n_test < 1:
            raise ConfigError("demo.celeba_identities is too small to leave a training split")

    def split_counts(self) -> tuple[int, int]:
        """Number of (val, test) identities; at least one each when the fraction is positive."""
        n = self.celeba_identities
        val = max(1, round(n * self.val_fraction)) if self.val_fraction > 0 else 0
        test = max(1, round(n * self.test_fraction)) if self.test_fraction > 0 else 0
        return int(val), int(test)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Chunk:
    """A run of identities of one profile and the file paths (relative to out_dir) of their images."""

    seed: int
    profile: str
    first: int  # index of the first identity (0-based)
    paths: tuple[tuple[str, ...], ...]  # per identity, per image
    out_dir: str


def render_chunk(chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
    """Render and write a chunk's images; returns labels uint8 [n, A] and landmarks float32 [n, 5, 2] in path order."""
    import cv2

    from facemac.data.demo.render import render
    from facemac.data.demo.sampling import draw_identity, draw_image, labels_of, stream

    cv2.setNumThreads(1)
    profile = PROFILES[chunk.profile]
    aligned = profile.group != "train"  # targets are stored as a FR aligner crops them; training keeps its pose
    labels, marks = [], []
    out = Path(chunk.out_dir)
    for k, paths in enumerate(chunk.paths):
        identity = chunk.first + k
        ident, habits = draw_identity(profile, chunk.seed, identity)
        for j, rel in enumerate(paths):
            shown, shot, rng = draw_image(profile, chunk.seed, identity, j, ident, habits)
            noise = None
            if aligned:  # a stream of its own: the training images' bytes do not depend on it
                noise = stream(chunk.seed, f"{chunk.profile}/detector", identity, j).normal(0.0, DETECTOR_NOISE_PX,
                                                                                             (5, 2))
            img, landmarks = render(shown, shot, rng, noise)
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]),
                                   [cv2.IMWRITE_JPEG_QUALITY, shot.jpeg_quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for {rel}")
            (out / rel).write_bytes(buf.tobytes())
            labels.append(labels_of(shown, shot))
            marks.append(landmarks)
    return np.stack(labels), np.stack(marks).astype(np.float32)


def celeba_plan(seed: int, params: DemoParams) -> tuple[np.ndarray, np.ndarray]:
    """File numbers (1-based, [identities, images]) and split per identity, ordered like CelebA: train, val, test."""
    n_id, n_img = params.celeba_identities, params.celeba_images_per_identity
    rng = np.random.default_rng([int(seed), 0x5B1D])
    order = rng.permutation(n_id)
    n_val, n_test = params.split_counts()
    split = np.zeros(n_id, np.int8)
    split[order[n_id - n_val - n_test:n_id - n_test]] = 1
    split[order[n_id - n_test:]] = 2
    fileno = np.zeros((n_id, n_img), np.int64)
    next_no = 1
    for s in (0, 1, 2):
        ids = np.flatnonzero(split == s)
        cells = np.array([(i, j) for i in ids for j in range(n_img)], np.int64).reshape(-1, 2)
        cells = cells[rng.permutation(len(cells))]  # an identity's images are spread through its split
        fileno[cells[:, 0], cells[:, 1]] = np.arange(next_no, next_no + len(cells))
        next_no += len(cells)
    return fileno, split


def target_path(identity: int, image: int) -> str:
    """Relative path of a target image: ``id00001/00.jpg``."""
    return f"id{identity + 1:05d}/{image:02d}.jpg"


def plan_chunks(seed: int, params: DemoParams, root: Path) -> list[Chunk]:
    """Every chunk to render for the training set and the four targets, in a fixed order; creates the folders."""
    chunks: list[Chunk] = []
    celeba = root / "celeba"
    (celeba / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    fileno, _ = celeba_plan(seed, params)
    for first in range(0, params.celeba_identities, CHUNK_IDENTITIES):
        last = min(first + CHUNK_IDENTITIES, params.celeba_identities)
        paths = tuple(tuple(f"img_align_celeba/{n:06d}.jpg" for n in fileno[i]) for i in range(first, last))
        chunks.append(Chunk(seed, TRAIN_PROFILE, first, paths, str(celeba)))
    for name in TARGET_NAMES:
        troot = root / "targets" / name
        for i in range(params.target_identities):
            (troot / target_path(i, 0)).parent.mkdir(parents=True, exist_ok=True)
        for first in range(0, params.target_identities, CHUNK_IDENTITIES):
            last = min(first + CHUNK_IDENTITIES, params.target_identities)
            paths = tuple(tuple(target_path(i, j) for j in range(params.target_images_per_identity))
                          for i in range(first, last))
            chunks.append(Chunk(seed, name, first, paths, str(troot)))
    return chunks


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def generate(root: Path, seed: int, params: DemoParams, workers: int | None = None, progress: bool = True) -> None:
    """Render everything under ``root`` (celeba/ and targets/<name>/) and write the label files."""
    chunks = plan_chunks(seed, params, root)
    total = sum(len(p) for c in chunks for p in c.paths)
    workers = min(default_workers() if workers is None else max(1, int(workers)), len(chunks))
    results: list[tuple[np.ndarray, np.ndarray]] = []
    bar = progress_bar(total=total, desc="demo faces", unit="img", disable=not progress)
    if workers == 1:
        for chunk in chunks:
            results.append(render_chunk(chunk))
            bar.update(len(results[-1][0]))
    else:
        with mp.get_context("spawn").Pool(workers) as pool:  # spawn: safe even if the caller runs threads
            for res in pool.imap(render_chunk, chunks):
                results.append(res)
                bar.update(len(res[0]))
    bar.close()
    _write_celeba(root / "celeba", seed, params, [r for c, r in zip(chunks, results) if c.profile == TRAIN_PROFILE])
    for name in TARGET_NAMES:
        _write_target(root / "targets" / name, params, [r for c, r in zip(chunks, results) if c.profile == name])


def _write_celeba(root: Path, seed: int, params: DemoParams, results: list) -> None:
    """CelebA's four annotation files, rows in file-number order, ±1 attributes as in list_attr_celeba.txt."""
    fileno, split = celeba_plan(seed, params)
    labels = np.concatenate([r[0] for r in results])  # identity-major order
    marks = np.concatenate([r[1] for r in results])
    n_img = params.celeba_images_per_identity
    order = np.argsort(fileno.reshape(-1), kind="stable")
    ids = np.repeat(np.arange(params.celeba_identities), n_img)
    names = [f"{n:06d}.jpg" for n in fileno.reshape(-1)[order]]
    labels, marks, ids = labels[order], marks[order], ids[order]
    n = len(names)
    with open(root / "list_attr_celeba.txt", "w", newline="\n") as f:
        f.write(f"{n}\n{' '.join(DEMO_ATTRIBUTES)}\n")
        for name, row in zip(names, labels):
            f.write(name + " " + " ".join("%2d" % (1 if v else -1) for v in row) + "\n")
    with open(root / "list_eval_partition.txt", "w", newline="\n") as f:
        f.writelines(f"{name} {split[i]}\n" for name, i in zip(names, ids))
    with open(root / "identity_CelebA.txt", "w", newline="\n") as f:
        f.writelines(f"{name} {i + 1}\n" for name, i in zip(names, ids))
    pts = np.rint(marks.reshape(n, 10)).astype(int)
    with open(root / "list_landmarks_align_celeba.txt", "w", newline="\n") as f:
        f.write(f"{n}\n{LANDMARK_HEADER}\n")
        for name, row in zip(names, pts):
            f.write(name + " " + " ".join("%4d" % v for v in row) + "\n")


def _write_target(root: Path, params: DemoParams, results: list) -> None:
    """Ground truth beside the images: labels.csv with path, identity and 0/1 attributes."""
    labels = np.concatenate([r[0] for r in results])
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "identity", *DEMO_ATTRIBUTES])
        k = 0
        for i in range(params.target_identities):
            for j in range(params.target_images_per_identity):
                rel = target_path(i, j)
                w.writerow([rel, rel.split("/")[0], *(int(v) for v in labels[k])])
                k += 1
