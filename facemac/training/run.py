"""The training stage: ``train(cfg)`` builds data, model and loop, selects on validation mA, tests once, records all."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from facemac import distributed as D
from facemac.atomic import atomic_write
from facemac.attributes import attribute_difference
from facemac.checkpoint import load_checkpoint
from facemac.config import to_plain
from facemac.data.table import FaceTable
from facemac.errors import CheckpointError, ConfigError
from facemac.lineage import model_artifact_name
from facemac.models.mac import create_mac, mac_from_checkpoint, model_data_config, preflight_model
from facemac.stage import Stage, StageContext, run_stage
from facemac.training.counting import COUNTING_RULES, counting_thresholds
from facemac.training.data import build_datasets, check_table, load_table, make_loader
from facemac.training.ema import ModelEma
from facemac.training.layer_decay import layer_decay_groups
from facemac.training.loop import Predictions, PredictSettings, Trainer, predict
from facemac.training import logged as L
from facemac.training.loss import WEIGHTINGS, positive_rates
from facemac.training.metrics import compute_metrics, flat_history
from facemac.training.probe import plan_training
from facemac.training.saver import CheckpointSaver
from facemac.training.selection import SELECTABLE, Selection
from facemac.training.state import rng_state, seed_everything, set_rng_state
from facemac.training.thresholds import OBJECTIVES, tune_thresholds
from facemac.training.validation_store import validation_payload

log = logging.getLogger(__name__)

CSV_COLUMNS = ["attribute", "accuracy", "balanced_accuracy", "f1", "auroc", "threshold"]


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """The plain model config stored in checkpoints (``img_size`` = the run's input size, for ViTs)."""
    mcfg = dict(to_plain(cfg.model))
    if not mcfg.get("timm_name"):
        raise ConfigError("model.timm_name is not set; pick a model with model=<name> (see conf/model/)")
    mcfg["img_size"] = int(mcfg.get("input_size") or 224)
    return mcfg


def _resume_path(cfg: DictConfig, out: Path) -> Path | None:
    resume = cfg.train.get("resume")
    if resume in (None, "", False):
        return None
    if str(resume) == "auto":
        last = out / "checkpoints" / "last.pt"
        if last.is_file():
            return last
        log.info("train.resume=auto: no %s yet, starting fresh", last)
        return None
    path = Path(str(resume)).expanduser()
    if not path.is_file():
        raise ConfigError(f"train.resume={resume!r}: no such checkpoint")
    return path


def _param_groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    """No weight decay on norms, biases and embeddings-like 1-d parameters (timm's default split)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _write_test_outputs(out: Path, val: dict[str, Any], test: dict[str, Any]) -> pd.DataFrame:
    rows = [{"attribute": a, **{k: r[k] for k in CSV_COLUMNS[1:]}} for a, r in test["per_attribute"].items()]
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    with atomic_write(out / "test_metrics.csv", "w") as f:
        frame.to_csv(f, index=False)
    doc = {"val": val, "test": {"mean_accuracy": test["mean_accuracy"], "mA": test["mA"],
                                "mean_f1": test["mean_f1"], "mean_auroc": test["mean_auroc"],
                                "per_attribute": test["per_attribute"]}}
    with atomic_write(out / "metrics.json", "w") as f:
        f.write(json.dumps(_no_nan(doc), indent=2))
    return frame


def _no_nan(value: Any) -> Any:
    """NaN (metric undefined: one class missing) → null, so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def metrics_of(preds: Predictions, attributes: list[str], thresholds: list[float]) -> dict[str, Any]:
    return compute_metrics(preds.probs, preds.labels, preds.mask, attributes, thresholds)


def _base_name(cfg: DictConfig) -> str:
    """`<model>-<dataset>`: the W&B run name (the model artifact is `mac-<model>-<dataset>`, facemac.lineage)."""
    return f"{cfg.model.get('name') or cfg.model.timm_name}-{(cfg.get('dataset') or {}).get('name') or 'data'}"


def _prepare(cfg: DictConfig, dist: D.DistInfo) -> None:
    """Before the tracker and any data work: config choices, then the model name and its starting weights (offline
    with nothing cached fails here), whose source goes into the W&B config and, via model_config, every checkpoint."""
    _check_choices(cfg.train)
    source = D.on_main(dist, lambda: preflight_model(model_config(cfg)))
    with open_dict(cfg):
        cfg.model.weight_source = source.record()
    log.info("%s starts from %s", cfg.model.timm_name, source.describe())


TRAIN = Stage("train", device_key="train.device", workers_key="data.num_workers", threads_key="train.cpu_threads",
              base_name=_base_name, prepare=_prepare)


def train(cfg: DictConfig, table: FaceTable | None = None) -> dict[str, Any]:
    """Train a MAC as ``cfg`` says; returns {"val_mA", "val", "test", "run_dir", "best", "last", "finished"}.

    ``table`` replaces the dataset named by ``cfg.dataset`` (tests and notebooks pass in-memory tables).
    """
    return run_stage(cfg, TRAIN, lambda ctx: _train(ctx, table))


def _optimizer_and_schedule(cfg: DictConfig, model: torch.nn.Module, batches_per_epoch: int) -> tuple[Any, Any]:
    """AdamW (or what ``optim`` names) over decay / no-decay groups (per-layer lr with ``train.layer_decay``), and the
    schedule over the steps this run will take (``limit_batches`` and ``max_steps`` included)."""
    tcfg = cfg.train
    ld = tcfg.get("layer_decay")
    groups = _param_groups(model) if ld is None else layer_decay_groups(
        model, float(cfg.optim.lr), float(cfg.optim.get("weight_decay", 0.0)), ld)
    optimizer = instantiate(cfg.optim)(groups)
    steps_per_epoch = batches_per_epoch
    if tcfg.get("limit_batches") is not None:
        steps_per_epoch = min(steps_per_epoch, int(tcfg.limit_batches))
    total_steps = int(tcfg.epochs) * steps_per_epoch
    if tcfg.get("max_steps") is not None:
        total_steps = min(total_steps, int(tcfg.max_steps))
    scheduler = instantiate(cfg.sched)(optimizer, total_steps=total_steps) if cfg.get("sched") else None
    return optimizer, scheduler


def _check_choices(tcfg: DictConfig) -> None:
    for key, value, valid in (("threshold_objective", tcfg.threshold_objective, OBJECTIVES),
                              ("loss_weighting", tcfg.loss_weighting, WEIGHTINGS),
                              ("counting_rule", tcfg.counting_rule, COUNTING_RULES),
                              ("early_stopping.monitor", tcfg.early_stopping.monitor, SELECTABLE)):
        if value not in valid:
            raise ConfigError(f"train.{key}={value!r}; choose one of {', '.join(valid)}")
    if not isinstance(tcfg.validation_rows, int) or isinstance(tcfg.validation_rows, bool) or tcfg.validation_rows < 0:
        raise ConfigError(f"train.validation_rows={tcfg.validation_rows!r}; use a row count >= 0 (0 stores no "
                          "validation predictions in the checkpoint)")


def _train(ctx: StageContext, table: FaceTable | None) -> dict[str, Any]:
    cfg, dist, out = ctx.cfg, ctx.dist, ctx.out
    tcfg = cfg.train
    seed = int(cfg.seed)
    seed_everything(seed)

    table = table if table is not None else load_table(cfg)
    check_table(table)
    attributes = list(table.attributes)
    mcfg = model_config(cfg)
    input_size = mcfg["img_size"]
    model = create_mac(mcfg, len(attributes), attributes).to(dist.device)
    if model.head_choice is not None:  # started from a facemac checkpoint: its head kept or a new one, said and recorded
        mcfg["weight_source"] = {**mcfg.get("weight_source", {}), "head": model.head_choice.record()}
        log.info("model.weights: %s head (%s)", "kept its" if model.head_choice.kept else "a new",
                 model.head_choice.reason)
    dcfg = model_data_config(model, input_size)
    data_cfg = {**dcfg, "align": str(cfg.data.align), "geometry": table.geometry, "dataset": table.name,
                "reduced_decode": bool(cfg.data.get("reduced_decode", False))}
    datasets = build_datasets(table, cfg, input_size)
    ctx.plan = plan_training(ctx, datasets["train"], model, dcfg["mean"], dcfg["std"])  # auto on CPU: measured
    loaders = {k: make_loader(ds, cfg, dist, train=k == "train", seed=seed) for k, ds in datasets.items()}
    keys = {k: ds.table.keys for k, ds in datasets.items()}

    train_table = datasets["train"].table
    pos_rate = None
    if tcfg.loss_weighting == "positive_rate":
        pos_rate = torch.from_numpy(positive_rates(train_table.labels, train_table.mask))

    optimizer, scheduler = _optimizer_and_schedule(cfg, model, len(loaders["train"]))
    ema = ModelEma(model, float(tcfg.ema.decay)) if tcfg.ema.enabled else None

    trainer = Trainer(model, optimizer, scheduler, dist, dcfg["mean"], dcfg["std"],
                      precision=str(tcfg.precision), channels_last=bool(tcfg.channels_last),
                      grad_clip=tcfg.get("grad_clip"), ema=ema, pos_rate=pos_rate,
                      limit_batches=tcfg.get("limit_batches"), max_steps=tcfg.get("max_steps"),
                      max_bad_fraction=float(tcfg.max_bad_fraction), progress=bool(tcfg.progress),
                      compile=bool(tcfg.get("compile", False)))
    es = tcfg.early_stopping
    selection = Selection(str(es.monitor), float(es.min_delta),
                          None if es.get("patience") is None else int(es.patience))
    saver = CheckpointSaver(out / "checkpoints", attributes, mcfg, data_cfg)
    resume = _resume_path(cfg, out)
    if resume is not None:
        _load_train_state(resume, trainer, attributes, selection)
        log.info("resumed from %s at epoch %d, step %d", resume, selection.epoch, trainer.step)

    stop_after = tcfg.get("stop_after_epochs")
    first_epoch = selection.epoch
    epochs = int(tcfg.epochs)
    for epoch in range(first_epoch, epochs):
        if selection.stopped or trainer.done:
            break
        loaders["train"].sampler.set_epoch(epoch)
        loaders["train"].generator.manual_seed(seed * 100_003 + epoch)
        stats = trainer.train_epoch(loaders["train"], epoch, keys["train"])
        val_preds = trainer.predict(loaders["val"], keys["val"], "val")
        thresholds = tune_thresholds(val_preds.probs, val_preds.labels, val_preds.mask, tcfg.threshold_objective)
        counting = counting_thresholds(val_preds.probs, val_preds.labels, val_preds.mask, str(tcfg.counting_rule))
        val = metrics_of(val_preds, attributes, thresholds)
        val.update(epoch=epoch + 1, loss=val_preds.loss)
        improved = selection.update(epoch + 1, val)
        log.info("epoch %d/%d: loss %.4f, %.0f img/s | val mean acc %.4f, mA %.4f%s", epoch + 1, epochs,
                 stats["loss"], stats["images_per_s"], val["mean_accuracy"], val["mA"], " (best)" if improved else "")
        if dist.is_main:
            best_state = (ema.module if ema is not None else model).state_dict() if improved else None
            saver.save(epoch + 1, trainer.step, thresholds, val, model.state_dict(), _train_state(trainer, selection),
                       best_state, counting={"counting_thresholds": counting, "counting_rule": str(tcfg.counting_rule)},
                       validation=validation_payload(val_preds, datasets["val"].table, int(tcfg.validation_rows),
                                                     seed))
            ctx.tracker.log({L.EPOCH: epoch + 1, L.TRAIN_LOSS: stats["loss"], L.THROUGHPUT: stats["images_per_s"],
                             L.LR: optimizer.param_groups[0]["lr"], **flat_history(val, "val")}, step=trainer.step)
        D.barrier()
        if stop_after is not None and epoch + 1 - first_epoch >= int(stop_after) and epoch + 1 < epochs:
            log.info("train.stop_after_epochs=%s reached: stopping with %s; continue with "
                     "hydra.run.dir=%s train.resume=auto", stop_after, saver.last, out)
            ctx.finished = False
            return {"val_mA": float(selection.best_metrics["mA"]), "val": selection.best_metrics, "test": None,
                    "run_dir": str(out), "best": str(saver.best), "last": str(saver.last), "finished": False}
        if selection.stopped:
            log.info("early stopping: no %s gain for %d epochs (best epoch %d)", selection.monitor,
                     selection.patience, selection.best_epoch)

    D.barrier()
    return _test_and_record(ctx, trainer, loaders["test"], keys["test"], saver, mcfg)


def _test_and_record(ctx: StageContext, trainer: Trainer, loader: Any, keys: list[str], saver: CheckpointSaver,
                     mcfg: dict[str, Any]) -> dict[str, Any]:
    """Test best.pt once, with its validation thresholds; metrics.json, the W&B summary and the model artifact."""
    cfg, dist, out = ctx.cfg, ctx.dist, ctx.out
    best = load_checkpoint(saver.best, map_location=dist.device)
    test_model = mac_from_checkpoint(best, saver.best).to(dist.device)
    if trainer.channels_last:
        test_model.to(memory_format=torch.channels_last)
    test_preds = trainer.predict(loader, keys, "test", model=test_model)
    test = metrics_of(test_preds, saver.attributes, best["thresholds"])
    val_best = best["metrics"]["val"]
    log.info("test (best epoch %s): mean accuracy %.4f, mA %.4f", best["epoch"], test["mean_accuracy"], test["mA"])
    if dist.is_main:
        frame = _write_test_outputs(out, val_best, test)
        ctx.tracker.log_table(L.TEST_TABLE, frame)
        ctx.tracker.summary({L.VAL_MA: val_best["mA"], L.VAL_ACC: val_best["mean_accuracy"], L.TEST_MA: test["mA"],
                             L.TEST_ACC: test["mean_accuracy"], L.BEST_EPOCH: best["epoch"]})
        name = model_artifact_name(mcfg, (cfg.get("dataset") or {}).get("name"))  # what annotate declares as input
        ctx.tracker.log_artifact(name, "model", [saver.best], aliases=["best", "latest"],
                                 metadata={"val_mA": val_best["mA"], "test_mA": test["mA"],
                                           "attributes": len(saver.attributes), "timm_name": mcfg["timm_name"]})
    return {"val_mA": float(val_best["mA"]), "val": val_best, "test": test, "run_dir": str(out),
            "best": str(saver.best), "last": str(saver.last), "finished": True}


def _train_state(trainer: Trainer, selection: Selection) -> dict[str, Any]:
    """Everything last.pt needs for a resume to the same weights (the selection fields at the top level, as v1 had)."""
    return {
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "scaler": trainer.scaler.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "step": trainer.step, "rng": rng_state(), **selection.state_dict(),
    }


def _load_train_state(path: Path, trainer: Trainer, attributes: list[str], selection: Selection) -> None:
    ckpt = load_checkpoint(path, map_location=trainer.device)
    ts = ckpt.get("train_state")
    if ts is None:
        raise CheckpointError(f"checkpoint {path} has no train_state (resume from last.pt, not best.pt)")
    diff = attribute_difference(ckpt["attributes"], attributes, "checkpoint", "dataset")
    if diff:
        raise CheckpointError(f"cannot resume from {path}: it was trained on other attributes than this dataset's "
                              f"({diff}); resume with the dataset it was trained on, or start a new run folder")
    trainer.model.load_state_dict(ckpt["model_state"])
    trainer.optimizer.load_state_dict(ts["optimizer"])
    if trainer.scheduler is not None and ts.get("scheduler") is not None:
        trainer.scheduler.load_state_dict(ts["scheduler"])
    if ts.get("scaler"):
        trainer.scaler.load_state_dict(ts["scaler"])
    if trainer.ema is not None and ts.get("ema") is not None:
        trainer.ema.load_state_dict(ts["ema"])
    trainer.step = int(ts["step"])
    set_rng_state(ts["rng"])
    selection.load_state_dict(ts)


def evaluate_checkpoint(ckpt_path: str | Path, table: FaceTable, split: str = "test", batch_size: int = 128,
                        device: str = "cpu") -> dict[str, Any]:
    """Metrics of a saved MAC on one split of a table, single process, with the checkpoint's thresholds."""
    from facemac.data.dataset import FaceDataset, collate_faces
    from facemac.data.preprocess import Preprocessor

    ckpt = load_checkpoint(ckpt_path)
    diff = attribute_difference(ckpt["attributes"], table.attributes, "checkpoint", f"table {table.name!r}")
    if diff:
        raise CheckpointError(f"checkpoint {ckpt_path} cannot be evaluated on table {table.name!r}: its attributes "
                              f"differ ({diff})")
    model = mac_from_checkpoint(ckpt, ckpt_path).eval().to(device)
    dc = ckpt["data_cfg"]
    ds = FaceDataset(table.split(split), Preprocessor.from_data_cfg(dc))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate_faces)
    preds = predict(model, loader, ds.table.keys, split, PredictSettings(torch.device(device), dc["mean"], dc["std"]))
    return metrics_of(preds, list(ckpt["attributes"]), list(ckpt["thresholds"]))


__all__ = ["train", "evaluate_checkpoint", "model_config"]
