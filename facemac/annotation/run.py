"""annotate(cfg): every configured target → ``<run>/annotations/<dataset>/`` (Parquet parts, manifest, failures)."""

from __future__ import annotations

import logging
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from omegaconf import DictConfig

from facemac.annotation.ckpt_ref import resolve_checkpoint
from facemac.annotation.faces_log import log_faces
from facemac.annotation.feed import (BatchResult, detect_loader_results, gpu_detect_results, gpu_results,
                                     loader_results, thread_results)
from facemac.annotation.geometry import (check_target_geometries, detector_record, detector_settings,
                                         pixel_check_settings)
from facemac.annotation.inference import Annotator, resolve_compile
from facemac.distributed import DistInfo, barrier, on_main
from facemac.annotation.shards import ShardStore, keys_sha256, plan_shards, shards_for_rank
from facemac.annotation.targets import TargetSpec, fill_demo_roots, load_target_table, resolve_targets
from facemac.annotation_resume import incomplete_reason
from facemac.annotation_table import (DETECT_COLUMNS, DETECT_FIELDS, VALIDATION_KEY, build_manifest, build_part,
                                      read_manifest, threshold_fields, write_failures, write_manifest,
                                      write_validation)
from facemac.data.detect import shared_detector
from facemac.data.preprocess import preprocess_record
from facemac.data.dataset import FaceDataset
from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError
from facemac.faces.tables import SampledTable
from facemac.hashing import file_sha256
from facemac.annotation.logged import SUMMARY_TABLE, dataset_keys
from facemac.lineage import annotation_artifact_files, annotation_artifact_name, declare_checkpoint
from facemac.progress import progress_bar
from facemac.settings.annotate import AnnotateSettings
from facemac.stage import Stage, StageContext, run_stage

log = logging.getLogger(__name__)

RELIABILITY_FORMULA = "1 - 2 * std_k(p_k), population std over the K dropout passes"


@dataclass
class TargetResult:
    """What one dataset's annotation produced (rank 0 holds the complete figures)."""

    name: str
    group: str
    out_dir: Path
    num_images: int = 0
    num_failures: int = 0
    seconds: float = 0.0
    processed: int = 0  # images decoded and run through the model by this process in this run (0 when resumed-done)
    positive_rate: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


def _prepare(s, dist: DistInfo):
    """The precision this device runs (``annotate.precision=auto`` → bf16/fp16/fp32), a decision the record holds."""
    from facemac.annotation.inference import AMP_DTYPES, amp_choice
    from facemac.settings import replace

    dtype, why = amp_choice(s.annotate.precision, dist.device)
    name = next((n for n, d in AMP_DTYPES.items() if d == dtype), "fp32")
    log.info("annotate.precision=%s: %s (%s)", s.annotate.precision, name, why)
    return replace(s, "annotate.precision", name)


ANNOTATE = Stage("annotate", device_key="annotate.device", workers_key="annotate.num_workers",
                 threads_key="annotate.num_threads", replicas_key="annotate.replicas",
                 serial=lambda s: s.annotate.mc_samples > 0, prepare=_prepare)


def annotate(cfg: DictConfig) -> dict[str, TargetResult]:
    """Annotate every target with one checkpoint; resumable, rank-sharded under torchrun; marks the run done."""
    return run_stage(cfg, ANNOTATE, _annotate)


def _annotate(ctx: StageContext) -> dict[str, TargetResult]:
    s, d, tracker, output_dir = ctx.settings, ctx.dist, ctx.tracker, ctx.out
    a = ctx.settings.annotate  # the typed settings (facemac/settings/annotate.py)
    device = d.device
    specs = resolve_targets(s)  # config mistakes (a missing root) first, before a checkpoint is looked up
    ckpt_path, how = on_main(d, lambda: _resolve_ckpt(s.ckpt, s.paths.log_dir, tracker))
    ckpt_path = Path(ckpt_path)
    if d.is_main:
        log.info("checkpoint: %s (ckpt=%s → %s)", ckpt_path, s.ckpt, how)
    roots = on_main(d, lambda: (fill_demo_roots(specs, s), [t.root for t in specs])[1])
    for spec, r in zip(specs, roots):
        spec.root = r
    tables = {t.name: load_target_table(t, s.paths.cache_dir) for t in specs}
    compile_model = resolve_compile(a.compile, sum(len(t) for t in tables.values()))
    annotator = Annotator.from_checkpoint(ckpt_path, device, amp=a.precision, channels_last=a.channels_last,
                                          mc_samples=a.mc_samples, compile=compile_model)
    # the autos decided from the checkpoint, device and image count: in the record (config.yaml, W&B) as they ran
    ctx.decide({"annotate.compile": bool(compile_model and not a.mc_samples),
                "annotate.channels_last": annotator.channels_last,
                "annotate.gpu_decode": use_gpu_decode(a.gpu_decode, annotator)})
    a = ctx.settings.annotate  # as decided above
    ckpt_info = {"checkpoint": str(ckpt_path.resolve()), "checkpoint_sha256": file_sha256(ckpt_path)}
    detect = detector_settings(a)
    pixels = pixel_check_settings(a, seed=s.seed)
    on_main(d, lambda: check_target_geometries(specs, tables, annotator.preprocessor, device, detect, pixels))

    results: dict[str, TargetResult] = {}
    for spec in specs:
        results[spec.name] = annotate_target(spec, tables[spec.name], annotator, output_dir / "annotations",
                                             a, ckpt_info, d, seed=s.seed)
    if d.is_main:
        _report(results, annotator, tracker, output_dir, a.log_artifacts)
        log_faces(tracker, [SampledTable(r.name, r.group, r.out_dir) for r in results.values()], a.log_faces, s.seed)
    return results


def _resolve_ckpt(ckpt: str, log_dir: str, tracker) -> tuple[str, str]:
    path, how = resolve_checkpoint(ckpt, log_dir, tracker)
    declare_checkpoint(tracker, path)  # lineage by content, whatever form ckpt= took (W&B: model → annotations)
    return str(path), how


def annotate_target(spec: TargetSpec, table: FaceTable, annotator: Annotator, annotations_dir: Path,
                    acfg: AnnotateSettings, ckpt_info: dict[str, str], d: DistInfo, seed: int = 0) -> TargetResult:
    """One dataset: this rank's unfinished shards → parts; rank 0 then writes failures.csv and the manifest."""
    out_dir = annotations_dir / spec.name
    store = ShardStore(out_dir)
    shard_size = int(acfg.shard_size)
    mc = int(acfg.mc_samples)
    info = {**ckpt_info, "dataset": spec.name, "num_listed": len(table), "shard_size": shard_size,
            "keys_sha256": keys_sha256(table.keys), "mc_samples": mc, "attributes": annotator.attributes}
    if table.geometry == "detect":  # a resume must find the faces the same way (absent for the other geometries)
        info["detector"] = detector_record(detector_settings(acfg))
    result = TargetResult(spec.name, spec.group, out_dir)
    if d.is_main:
        store.prepare()
        store.write_run_info(info)
    barrier()
    store.check_run_info(info)  # every rank raises the same refusal, so none waits at a barrier

    shards = plan_shards(len(table), shard_size)
    pending = [i for i in shards_for_rank(len(shards), d.rank, d.world_size) if not store.is_done(i)]
    done_before = len(shards_for_rank(len(shards), d.rank, d.world_size)) - len(pending)
    if done_before and d.is_main:
        log.info("%s: resuming, %d of %d shards already written", spec.name, done_before, len(shards))
    if pending:
        t0 = time.perf_counter()
        result.processed = _run_shards(table, annotator, store, shards, pending, acfg, seed, d,
                                       desc=f"{spec.name} r{d.rank}" if d.world_size > 1 else spec.name)
        result.seconds = time.perf_counter() - t0
    barrier()
    if d.is_main:
        _finalize(spec, table, annotator, store, shards, acfg, ckpt_info, result)
    barrier()
    manifest = read_manifest(out_dir)
    if not manifest["complete"]:
        raise DataError(f"{spec.name}: {incomplete_reason(manifest, out_dir)}")
    return result


def _run_shards(table: FaceTable, annotator: Annotator, store: ShardStore, shards: list[tuple[int, int]],
                pending: list[int], acfg: AnnotateSettings, seed: int, d: DistInfo, desc: str) -> int:
    """Batches never cross a shard boundary; a shard's part is committed as soon as its last batch is back."""
    bs = int(acfg.batch_size)
    batches, meta = [], []
    for i in pending:
        start, stop = shards[i]
        for b in range(start, stop, bs):
            batches.append(list(range(b, min(b + bs, stop))))
            meta.append((i, b == start, b + bs >= stop))
    total = sum(shards[i][1] - shards[i][0] for i in pending)
    rows: list[np.ndarray] = []
    probs: list[torch.Tensor] = []
    rels: list[torch.Tensor] = []
    dets: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    with closing(_results(table, annotator, batches, meta, acfg, seed)) as results, \
            progress_bar(total=total, desc=desc, unit="img", dynamic_ncols=True) as bar:
        for res, (shard, first, last) in zip(results, meta):
            if first:
                rows, probs, rels, dets, failures = [], [], [], [], []
            failures += [(table.keys[i], reason) for i, reason in res.failures]
            if len(res.index):
                rows.append(res.index.numpy())
                probs.append(res.probs)
                if res.rels is not None:
                    rels.append(res.rels)
                if res.detections is not None:
                    dets.append(res.detections)
            bar.update(len(res.index) + len(res.failures))
            if last:
                _commit(store, table, annotator, shard, shards[shard], rows, probs, rels, failures,
                        dets if table.geometry == "detect" else None)
    return total


def _results(table: FaceTable, annotator: Annotator, batches: list[list[int]], meta: list[tuple[int, bool, bool]],
             acfg: AnnotateSettings, seed: int) -> Iterator[BatchResult]:
    """The engine the resource plan chose (facemac/annotation/feed.py): inference threads that decode their own
    batches on the CPU, else DataLoader decoding with inference here (MC-dropout: re-seeded per shard, so its draws
    depend on the shard only, whatever the resume point or world size)."""
    seeds = [seed + shard if first else None for shard, first, _ in meta]
    replicas = int(acfg.replicas or 1)
    if table.geometry == "detect":  # a face detector before the warp: the same three engines
        settings = detector_settings(acfg)
        if use_gpu_decode(acfg.gpu_decode, annotator):
            return gpu_detect_results(table, batches, annotator, settings, int(acfg.num_workers), seeds)
        if replicas > 1 and annotator.device.type == "cpu" and not annotator.mc_samples:
            detector = shared_detector(settings, "cpu")
            return thread_results(FaceDataset(table, annotator.preprocessor), batches, annotator, replicas, detector)
        return detect_loader_results(table, batches, annotator, settings, int(acfg.num_workers), seeds)
    if use_gpu_decode(acfg.gpu_decode, annotator):
        return gpu_results(table, batches, annotator, int(acfg.num_workers), bool(acfg.gpu_verify),
                           seeds)
    dataset = FaceDataset(table, annotator.preprocessor)
    if replicas > 1 and annotator.device.type == "cpu" and not annotator.mc_samples:
        return thread_results(dataset, batches, annotator, replicas)
    return loader_results(dataset, batches, annotator, int(acfg.num_workers), seeds)


def use_gpu_decode(spec, annotator: Annotator) -> bool:
    """``annotate.gpu_decode``: auto = on a CUDA device for ArcFace-aligned checkpoints (the warp runs batched
    there); true = wherever the model runs (on a CPU: the same batched torch path, for tests); false = never."""
    if str(spec).lower() not in ("auto", "true", "false"):
        raise ConfigError(f"annotate.gpu_decode={spec!r}: use auto, true or false")
    if annotator.preprocessor.align != "arcface" or str(spec).lower() == "false":
        return False
    return str(spec).lower() == "true" or annotator.device.type == "cuda"


def _commit(store: ShardStore, table: FaceTable, annotator: Annotator, shard: int, bounds: tuple[int, int],
            rows: list[np.ndarray], probs: list[torch.Tensor], rels: list[torch.Tensor],
            failures: list[tuple[str, str]], dets: list[np.ndarray] | None = None) -> None:
    a = len(annotator.attributes)
    idx = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    p = torch.cat(probs).numpy() if probs else np.empty((0, a), np.float32)
    r = (torch.cat(rels).numpy() if rels else np.empty((0, a), np.float32)) if annotator.mc_samples else None
    ids = table.identities
    det = None if dets is None else (np.concatenate(dets) if dets else np.empty((0, len(DETECT_FIELDS)), np.float32))
    part = build_part([table.keys[i] for i in idx], [None if ids is None else ids[i] for i in idx], p,
                      annotator.attributes, r, det)
    store.commit(shard, range(*bounds), part, failures)


def _finalize(spec: TargetSpec, table: FaceTable, annotator: Annotator, store: ShardStore,
              shards: list[tuple[int, int]], acfg: AnnotateSettings, ckpt_info: dict[str, str],
              result: TargetResult) -> None:
    """All parts exist → failures.csv, then the manifest (last). Positive rates are streamed from the parts."""
    missing = [i for i in range(len(shards)) if not store.is_done(i)]
    if missing:
        raise DataError(f"{spec.name}: shards {missing[:10]} have no part in {store.out_dir} although every rank "
                        "finished; re-run the same command to fill them")
    failures: list[tuple[str, str]] = []
    part_rows = []
    for i in range(len(shards)):
        side = store.load_sidecar(i)
        failures += [tuple(f) for f in side["failures"]]
        part_rows.append(side["rows"])
    write_failures(store.out_dir, failures)
    parts = [store.part(i) for i in range(len(shards))]
    result.num_images, result.num_failures = sum(part_rows), len(failures)
    result.positive_rate = positive_rates(parts, annotator.attributes, annotator.label_thresholds)
    limit = float(acfg.max_failure_fraction)
    complete = len(failures) <= limit * len(table)
    validation = None  # the MAC's validation predictions travel with the table: the analysis needs no checkpoint
    if annotator.validation is not None:
        validation = write_validation(store.out_dir, *annotator.validation, annotator.attributes)
    manifest = build_manifest(
        dataset=spec.name, group=spec.group, source_format=spec.format, root=str(spec.root),
        checkpoint=ckpt_info["checkpoint"], checkpoint_sha256=ckpt_info["checkpoint_sha256"],
        attributes=annotator.attributes, thresholds=annotator.thresholds, part_files=parts, part_rows=part_rows,
        num_failures=len(failures), complete=complete, mc_samples=int(acfg.mc_samples),
        extra={"num_listed": len(table), "shard_size": int(acfg.shard_size), "geometry": table.geometry,
               "max_failure_fraction": limit, "reader": spec.reader_cfg(),
               # the checkpoint's validation metrics per attribute: the analysis shows the MAC's quality (#20)
               **({"mac_validation_metrics": q} if (q := getattr(annotator, "val_quality", None)) else {}),
               "preprocess": preprocess_record(annotator.preprocessor),
               **threshold_fields(annotator.attributes, annotator.counting_thresholds, annotator.counting_rule),
               **({"detector": detector_record(detector_settings(acfg)), "detect_columns": list(DETECT_COLUMNS)}
                  if table.geometry == "detect" else {}),
               **({"reliability_formula": RELIABILITY_FORMULA} if int(acfg.mc_samples) else {}),
               **({VALIDATION_KEY: validation} if validation is not None else {})})
    write_manifest(store.out_dir, manifest)
    log.info("%s [%s]: %d images annotated, %d unreadable, %s, %d parts → %s", spec.name, spec.group,
             result.num_images, result.num_failures,
             f"{result.images_per_s:.1f} img/s" if result.processed else "nothing left to do (resumed)",
             len(parts), store.out_dir)


def positive_rates(parts: list[Path], attributes: list[str], thresholds: list[float]) -> dict[str, float]:
    """Share of rows with probability > threshold (the rule the thresholds were tuned for), per attribute, one part in memory at a time."""
    pos = np.zeros(len(attributes), dtype=np.int64)
    n = 0
    thr = np.asarray(thresholds, dtype=np.float32)
    for p in parts:
        t = pq.read_table(p, columns=attributes)
        if t.num_rows == 0:
            continue
        arr = np.stack([t.column(a).to_numpy() for a in attributes], axis=1)
        pos += (arr > thr).sum(axis=0)
        n += t.num_rows
    return {a: float(pos[j] / n) if n else float("nan") for j, a in enumerate(attributes)}


def _report(results: dict[str, TargetResult], annotator: Annotator, tracker, output_dir: Path,
            log_artifacts: bool) -> None:
    """annotation_summary.csv in the run folder, the same table in W&B, one artifact per dataset."""
    frame = pd.DataFrame([{"dataset": r.name, "group": r.group, "images": r.num_images, "failures": r.num_failures,
                           "images_per_s": round(r.images_per_s, 2),
                           **{f"rate:{a}": r.positive_rate.get(a) for a in annotator.attributes}}
                          for r in results.values()])
    frame.to_csv(output_dir / "annotation_summary.csv", index=False)
    tracker.log_table(SUMMARY_TABLE, frame)
    tracker.summary({k: v for r in results.values()
                     for k, v in zip(dataset_keys(r.name), (r.num_images, r.num_failures))})
    if not log_artifacts:
        return
    for r in results.values():
        manifest = read_manifest(r.out_dir)
        files = annotation_artifact_files(r.out_dir, manifest)  # the same files analyze declares as its input
        meta = {k: v for k, v in manifest.items() if k not in ("parts", "thresholds", "counting_thresholds")}
        tracker.log_artifact(annotation_artifact_name(r.name), "annotations", files, metadata=meta)
