"""The training stage's door to the data layer: tables, augmentation and loaders (all registry calls live here)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from facemac import distributed as D
from facemac.data.dataset import FaceDataset, collate_faces
from facemac.data.preprocess import Preprocessor
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def load_table(cfg: DictConfig) -> FaceTable:
    """The labelled table named by ``cfg.dataset`` (rank 0 first, so first-use generation/caching happens once)."""
    from facemac.data.registry import build_table  # the readers' registry; imported lazily so tests can inject tables

    if cfg.get("dataset") is None:
        raise ConfigError("dataset is not set; pass dataset=<name> (e.g. dataset=demo)")
    build = lambda: detect_if_declared(build_table(cfg.dataset, cfg.paths.cache_dir,  # noqa: E731
                                                   demo_params=cfg.get("demo")), cfg)
    table = build() if D.is_main_process() else None
    D.barrier()
    return table if table is not None else build()


def detect_if_declared(table: FaceTable, cfg: DictConfig) -> FaceTable:
    """``dataset.geometry: detect``: every face found once (cached under paths.cache_dir/detect/, rank 0 first), its
    points kept as the table's landmarks, so each epoch warps with them. ``data.detect`` holds the detector's
    settings; images without a face count against ``dataset.max_missing_landmarks``."""
    if table.geometry != "detect":
        return table
    from facemac.config import to_plain
    from facemac.data.detect import detector_settings_from
    from facemac.data.detect_table import detected_table

    settings = detector_settings_from(to_plain(cfg.data.get("detect")), "data.detect")
    max_missing = float(cfg.dataset.get("max_missing_landmarks", 0.01) or 0.0)
    return detected_table(table, settings, cfg.paths.cache_dir, max_missing, key="dataset")


def make_augment(cfg: DictConfig) -> Any:
    """The training augmentation (albumentations on uint8) or None when ``augment`` is off."""
    aug = cfg.get("augment")
    if aug is None or not aug.get("enabled", True):
        return None
    from facemac.data.augment import build_augment

    from facemac.config import to_plain

    return build_augment(to_plain(aug), seed=int(cfg.get("seed", 0)))


class EpochIndexSampler(Sampler):
    """A training sampler's rows as ``(row, epoch)``: the dataset draws each face's augmentation from (seed, epoch,
    row), so training gives the same weights whatever the number of workers (the CPU probe's choice, which follows
    measured timings), persistent or not, and wherever a run was stopped and resumed."""

    def __init__(self, sampler: DistributedSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.sampler.epoch
        return ((int(i), epoch) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def check_table(table: FaceTable) -> None:
    """Refuse tables that cannot train a MAC, naming what is missing."""
    if table.labels is None or not table.attributes:
        raise DataError(f"dataset {table.name!r} ({table.source.describe()}) has no attribute labels")
    if table.splits is None:
        raise DataError(f"dataset {table.name!r} ({table.source.describe()}) has no train/val/test split")
    for name in ("train", "val", "test"):
        if len(table.split(name)) == 0:
            raise DataError(f"dataset {table.name!r} ({table.source.describe()}) has an empty {name} split")


def make_loader(dataset: FaceDataset, cfg: Any, dist: D.DistInfo, train: bool, seed: int,
                workers: int | None = None) -> DataLoader:
    """A loader over this rank's shard (DistributedSampler with 1 replica when not distributed, for one code path).
    ``workers``: the stage's plan (``ctx.plan.workers``); None resolves ``data.num_workers`` here (tools, tests)."""
    dcfg = cfg.data
    if workers is None:
        workers = D.resolve_workers(dcfg.num_workers, dist.device, "data.num_workers", dist.world_size)
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=train, seed=seed,
                                 drop_last=False)
    gen = torch.Generator()
    gen.manual_seed(seed)
    bs = int(dcfg.batch_size if train else (dcfg.get("eval_batch_size") or dcfg.batch_size))
    return DataLoader(
        dataset, batch_size=bs, sampler=EpochIndexSampler(sampler) if train else sampler, num_workers=workers,
        collate_fn=collate_faces,
        pin_memory=dist.device.type == "cuda", drop_last=train and len(dataset) // dist.world_size > bs,
        persistent_workers=workers > 0 and bool(dcfg.get("persistent_workers", True)),
        prefetch_factor=int(dcfg.get("prefetch_factor", 2)) if workers > 0 else None, generator=gen,
    )


def build_datasets(table: FaceTable, cfg: DictConfig, input_size: int) -> dict[str, Any]:
    """train/val/test datasets in the configured geometry; augmentation on train only; train.decoded_cache serves
    the faces from a memory-mapped cache of decoded, warped faces instead of decoding every epoch."""
    align = str(cfg.data.align)
    pre = Preprocessor(align, input_size, reduced_decode=bool(cfg.data.get("reduced_decode", False)))
    pre.check_geometry(table.geometry, table.landmarks is not None, table.name)
    augment = make_augment(cfg)
    parts = {name: table.split(name) for name in ("train", "val", "test")}
    # every rank checks the setting (same errors everywhere), rank 0's view of the disk decides for all
    use, why = D.broadcast_object(use_decoded_cache(cfg, parts, pre.size))
    if D.is_main_process():
        log.info("decoded cache %s (train.decoded_cache=%s: %s)", "on" if use else "off",
                 (cfg.get("train") or {}).get("decoded_cache", False), why)
    if use:
        from facemac.data.decoded_cache import CacheSpaceError

        try:
            return _cached_datasets(parts, pre, augment, cfg)
        except CacheSpaceError as e:
            if str((cfg.get("train") or {}).get("decoded_cache")).lower() != "auto":
                raise
            log.warning("%s; train.decoded_cache=auto: decoding every epoch instead", e)
    return {name: FaceDataset(t, pre, augment if name == "train" else None) for name, t in parts.items()}


def use_decoded_cache(cfg: DictConfig, parts: dict[str, FaceTable], size: int,
                      free_disk: int | None = None, memory: int | None = None) -> tuple[bool, str]:
    """``train.decoded_cache``: true/false as given; ``auto`` = on when the run reads its faces at least twice
    (train.epochs >= 2, or max_steps covering two passes; never for limit_batches smoke runs) and the cache (N x S x
    S x 3 bytes) fits in half the free disk under paths.cache_dir and half the machine's memory. Beyond memory every
    epoch would re-read S x S x 3 bytes per face from disk, several times a JPEG's size: decoding may then be cheaper."""
    tcfg = cfg.get("train") or {}
    spec = str(tcfg.get("decoded_cache", False)).lower()
    if spec in ("true", "false"):
        return spec == "true", "as set"
    if spec != "auto":
        raise ConfigError(f"train.decoded_cache={spec!r}: use auto, true or false")
    if tcfg.get("limit_batches") is not None:
        return False, "limit_batches is set (a smoke run reads a few batches once)"
    n_train = max(1, len(parts["train"]))
    passes = float(int(tcfg.get("epochs", 1)))
    if tcfg.get("max_steps") is not None:
        world = D.get_world_size()
        passes = min(passes, int(tcfg.max_steps) * int(cfg.data.batch_size) * world / n_train)
    if passes < 2:
        return False, f"the training faces are read {passes:.2g} times (< 2)"
    need = sum(len(t) for t in parts.values()) * size * size * 3
    if free_disk is None:
        free_disk = _free_bytes(Path(str(cfg.paths.cache_dir)).expanduser())
    if memory is None:
        memory = _memory_bytes()
    gib = 2 ** 30
    if need > free_disk / 2:
        return False, f"{need / gib:.1f} GiB would take more than half the {free_disk / gib:.1f} GiB free disk"
    if memory is not None and need > memory / 2:
        return False, f"{need / gib:.1f} GiB exceeds half the {memory / gib:.1f} GiB memory (epochs would read disk)"
    return True, f"{passes:.3g} passes over the faces, cache {need / gib:.2f} GiB fits disk and memory"


def cache_name(table: FaceTable, split: str, pre: Preprocessor) -> str:
    """``<dataset>-<source digest>-<split>-<align><size>``: two copies of a dataset under one name (a full CelebA and
    a subset, both "celeba") get caches of their own instead of rebuilding each other's in turn."""
    source = hashlib.sha256(table.source.describe().encode()).hexdigest()[:8]
    return f"{table.name}-{source}-{split}-{pre.align}{pre.size}"


def cache_build_workers() -> int:
    """DataLoader workers for building a decoded cache: every core (no model runs meanwhile), in-process on one."""
    cores = D.cores_per_local_rank()
    return cores if cores > 1 else 0


def _memory_bytes() -> int | None:
    """Physical memory in bytes; None where the platform does not say (then only the disk decides)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def _cached_datasets(parts: dict[str, FaceTable], pre: Preprocessor, augment: Any,
                     cfg: DictConfig) -> dict[str, Any]:
    """Each split's faces decoded and warped once into a memmap (rank 0 builds first, with every core)."""
    from facemac.data.decoded_cache import CachedFaceDataset, CacheSpaceError, open_or_build

    build_workers = cache_build_workers()

    def build() -> dict[str, Any]:
        out = {}
        for name, t in parts.items():
            cache = open_or_build(t, pre, cfg.paths.cache_dir, cache_name(t, name, pre),
                                  workers=build_workers,
                                  progress=bool((cfg.get("train") or {}).get("progress", True)))
            out[name] = CachedFaceDataset(t, cache, augment if name == "train" else None)
        return out

    result, no_room = None, None
    if D.is_main_process():
        try:
            result = build()
        except CacheSpaceError as e:  # raised on every rank below, so all of them take the same path
            no_room = str(e)
    D.barrier()
    no_room = D.broadcast_object(no_room)
    if no_room is not None:
        raise CacheSpaceError(no_room)
    return result if result is not None else build()
