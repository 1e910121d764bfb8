"""The training stage's door to the data layer: tables, augmentation and loaders (all registry calls live here)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, DistributedSampler

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
    build = lambda: build_table(cfg.dataset, cfg.paths.cache_dir, demo_params=cfg.get("demo"))  # noqa: E731
    table = build() if D.is_main_process() else None
    D.barrier()
    return table if table is not None else build()


def make_augment(cfg: DictConfig) -> Any:
    """The training augmentation (albumentations on uint8) or None when ``augment`` is off."""
    aug = cfg.get("augment")
    if aug is None or not aug.get("enabled", True):
        return None
    from facemac.data.augment import build_augment

    return build_augment(aug)


def check_table(table: FaceTable) -> None:
    """Refuse tables that cannot train a MAC, naming what is missing."""
    if table.labels is None or not table.attributes:
        raise DataError(f"dataset {table.name!r} ({table.source.describe()}) has no attribute labels")
    if table.splits is None:
        raise DataError(f"dataset {table.name!r} ({table.source.describe()}) has no train/val/test split")
    for name in ("train", "val", "test"):
        if len(table.split(name)) == 0:
            raise DataError(f"dataset {table.name!r} ({table.source.describe()}) has an empty {name} split")


def make_loader(dataset: FaceDataset, cfg: DictConfig, dist: D.DistInfo, train: bool, seed: int) -> DataLoader:
    """A loader over this rank's shard (DistributedSampler with 1 replica when not distributed, for one code path)."""
    dcfg = cfg.data
    workers = D.resolve_workers(dcfg.num_workers, dist.device, "data.num_workers", dist.world_size)
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=train, seed=seed,
                                 drop_last=False)
    gen = torch.Generator()
    gen.manual_seed(seed)
    bs = int(dcfg.batch_size if train else (dcfg.get("eval_batch_size") or dcfg.batch_size))
    return DataLoader(
        dataset, batch_size=bs, sampler=sampler, num_workers=workers, collate_fn=collate_faces,
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
    if bool((cfg.get("train") or {}).get("decoded_cache", False)):
        return _cached_datasets(parts, pre, augment, cfg)
    return {name: FaceDataset(t, pre, augment if name == "train" else None) for name, t in parts.items()}


def _cached_datasets(parts: dict[str, FaceTable], pre: Preprocessor, augment: Any,
                     cfg: DictConfig) -> dict[str, Any]:
    """train.decoded_cache=true: each split's faces decoded and warped once into a memmap (rank 0 builds first)."""
    from facemac.data.decoded_cache import CachedFaceDataset, open_or_build

    def build() -> dict[str, Any]:
        out = {}
        for name, t in parts.items():
            cache = open_or_build(t, pre, cfg.paths.cache_dir, f"{t.name}-{name}-{pre.align}{pre.size}",
                                  workers=int(cfg.data.num_workers),
                                  progress=bool((cfg.get("train") or {}).get("progress", True)))
            out[name] = CachedFaceDataset(t, cache, augment if name == "train" else None)
        return out

    result = build() if D.is_main_process() else None
    D.barrier()
    return result if result is not None else build()
