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
from facemac.attributes import attribute_difference
from facemac.data.table import FaceTable
from facemac.errors import CheckpointError, ConfigError
from facemac.models.mac import create_mac, mac_from_checkpoint, model_data_config, preflight_model
from facemac.runlock import RunLock
from facemac.runs import mark_done
from facemac.tracking import create_tracker
from facemac.training.checkpoint import load_checkpoint, save_checkpoint
from facemac.training.counting import COUNTING_RULES, DEFAULT_COUNTING_RULE, counting_thresholds
from facemac.training.data import build_datasets, check_table, load_table, make_loader, plain
from facemac.training.ema import ModelEma
from facemac.training.loop.trainer import Predictions, Trainer
from facemac.training.layer_decay import layer_decay_groups
from facemac.training.loss import WEIGHTINGS, positive_rates
from facemac.training.metrics import compute_metrics, flat_history
from facemac.training.state import rng_state, seed_everything, set_rng_state
from facemac.training.thresholds import OBJECTIVES, tune_thresholds

log = logging.getLogger(__name__)

CSV_COLUMNS = ["attribute", "accuracy", "balanced_accuracy", "f1", "auroc", "threshold"]


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """The plain model config stored in checkpoints (``img_size`` = the run's input size, for ViTs)."""
    mcfg = dict(plain(cfg.model))
    if not mcfg.get("timm_name"):
        raise ConfigError("model.timm_name is not set; pick a model with model=<name> (see conf/model/)")
    mcfg["img_size"] = int(mcfg.get("input_size") or 224)
    return mcfg


def base_name(cfg: DictConfig) -> str:
    """`<model>-<dataset>`: the W&B artifact name (versions accumulate under it)."""
    return f"{cfg.model.get('name') or cfg.model.timm_name}-{(cfg.get('dataset') or {}).get('name') or 'data'}"


def run_name(cfg: DictConfig) -> str:
    """`<model>-<dataset>` plus the swept values of a multirun job, so sweep runs are told apart in W&B."""
    name = base_name(cfg)
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            swept = ",".join(o for o in hc.overrides.task if not o.startswith(("hydra.", "logger.")))
            name = f"{name}#{hc.job.num}" + (f" {swept}" if swept else "")
            name = name if len(name) <= 120 else name[:117] + "..."
    except (ValueError, ImportError, AttributeError):
        pass
    return name


def output_dir(cfg: DictConfig) -> Path:
    """This run's folder; under torchrun all ranks must agree on it (an explicit hydra.run.dir)."""
    out = Path(str(cfg.paths.output_dir)).expanduser().resolve()
    main = Path(D.broadcast_object(str(out)))
    if main != out:
        raise ConfigError(f"torchrun ranks disagree on the run folder ({main} vs {out}); pass one explicit "
                          "hydra.run.dir=<folder> to every rank")
    return out


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


def _score(metrics: dict[str, Any], key: str) -> float:
    v = metrics.get(key, math.nan)
    return -math.inf if v is None or math.isnan(v) else float(v)


def _write_test_outputs(out: Path, val: dict[str, Any], test: dict[str, Any]) -> pd.DataFrame:
    rows = [{"attribute": a, **{k: r[k] for k in CSV_COLUMNS[1:]}} for a, r in test["per_attribute"].items()]
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    frame.to_csv(out / "test_metrics.csv", index=False)
    doc = {"val": val, "test": {"mean_accuracy": test["mean_accuracy"], "mA": test["mA"],
                                "mean_f1": test["mean_f1"], "mean_auroc": test["mean_auroc"],
                                "per_attribute": test["per_attribute"]}}
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(_no_nan(doc), indent=2))
    tmp.replace(out / "metrics.json")
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


def train(cfg: DictConfig, table: FaceTable | None = None) -> dict[str, Any]:
    """Train a MAC as ``cfg`` says; returns {"val_mA", "val", "test", "run_dir", "best", "last"}.

    ``table`` replaces the dataset named by ``cfg.dataset`` (tests and notebooks pass in-memory tables).
    """
    dist = D.init_distributed(str(cfg.train.get("device", "auto")))
    # one training run per folder: a second one (same hydra.run.dir, e.g. a resume started while the first still
    # runs) would overwrite last.pt/best.pt under it; all ranks of one torchrun job share the folder
    out = output_dir(cfg)
    lock = RunLock(out, "training run", hint="give this run its own hydra.run.dir")
    try:
        D.on_main(dist, lambda: (lock.acquire(), None)[1])
        return _train(cfg, dist, table, out)
    finally:
        lock.release()
        D.cleanup()


def _train(cfg: DictConfig, dist: D.DistInfo, table: FaceTable | None, out: Path) -> dict[str, Any]:
    tcfg = cfg.train
    ckpt_dir = out / "checkpoints"
    if tcfg.threshold_objective not in OBJECTIVES:
        raise ConfigError(f"train.threshold_objective={tcfg.threshold_objective!r}; choose one of "
                          f"{', '.join(OBJECTIVES)}")
    counting_rule = str(tcfg.get("counting_rule", DEFAULT_COUNTING_RULE))
    if counting_rule not in COUNTING_RULES:
        raise ConfigError(f"train.counting_rule={counting_rule!r}; choose one of {', '.join(COUNTING_RULES)}")
    if tcfg.loss_weighting not in WEIGHTINGS:
        raise ConfigError(f"train.loss_weighting={tcfg.loss_weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    # before any data work: a typo in the model or missing starting weights (offline, nothing cached) fail here
    source = D.on_main(dist, lambda: preflight_model(model_config(cfg)))
    with open_dict(cfg):  # recorded in the W&B config and, through model_config, in every checkpoint
        cfg.model.weight_source = source.record()
    log.info("%s starts from %s", cfg.model.timm_name, source.describe())
    seed = int(cfg.seed)
    seed_everything(seed)
    with open_dict(cfg):  # data.num_workers=auto → a number, recorded as such in the run's config
        cfg.data.num_workers = D.resolve_workers(cfg.data.num_workers, dist.device, "data.num_workers",
                                                 dist.world_size)
    threads = D.resolve_threads(tcfg.get("cpu_threads", "auto"), int(cfg.data.num_workers), dist.device,
                                "train.cpu_threads", dist.world_size)
    if threads:  # keep CPU training from oversubscribing cores: OpenMP threads beyond free cores spin and crawl
        torch.set_num_threads(threads)
        log.info("torch CPU threads: %d", threads)

    table = table if table is not None else load_table(cfg)
    check_table(table)
    attributes = list(table.attributes)
    mcfg = model_config(cfg)
    input_size = mcfg["img_size"]
    model = create_mac(mcfg, len(attributes)).to(dist.device)
    dcfg = model_data_config(model, input_size)
    data_cfg = {**dcfg, "align": str(cfg.data.align), "geometry": table.geometry, "dataset": table.name,
                "reduced_decode": bool(cfg.data.get("reduced_decode", False))}
    datasets = build_datasets(table, cfg, input_size)
    loaders = {k: make_loader(ds, cfg, dist, train=k == "train", seed=seed) for k, ds in datasets.items()}
    keys = {k: ds.table.keys for k, ds in datasets.items()}

    train_table = datasets["train"].table
    pos_rate = None
    if tcfg.loss_weighting == "positive_rate":
        pos_rate = torch.from_numpy(positive_rates(train_table.labels, train_table.mask))

    ld = tcfg.get("layer_decay")
    groups = _param_groups(model) if ld is None else layer_decay_groups(
        model, float(cfg.optim.lr), float(cfg.optim.get("weight_decay", 0.0)), ld)
    optimizer = instantiate(cfg.optim)(groups)
    steps_per_epoch = len(loaders["train"])
    if tcfg.get("limit_batches") is not None:
        steps_per_epoch = min(steps_per_epoch, int(tcfg.limit_batches))
    epochs = int(tcfg.epochs)
    total_steps = epochs * steps_per_epoch
    if tcfg.get("max_steps") is not None:
        total_steps = min(total_steps, int(tcfg.max_steps))
    scheduler = instantiate(cfg.sched)(optimizer, total_steps=total_steps) if cfg.get("sched") else None
    ema = ModelEma(model, float(tcfg.ema.decay)) if tcfg.ema.enabled else None

    trainer = Trainer(model, optimizer, scheduler, dist, dcfg["mean"], dcfg["std"],
                      precision=str(tcfg.precision), channels_last=bool(tcfg.channels_last),
                      grad_clip=tcfg.get("grad_clip"), ema=ema, pos_rate=pos_rate,
                      limit_batches=tcfg.get("limit_batches"), max_steps=tcfg.get("max_steps"),
                      max_bad_fraction=float(tcfg.max_bad_fraction), progress=bool(tcfg.progress),
                      compile=bool(tcfg.get("compile", False)))

    select = str(tcfg.early_stopping.monitor)
    state = {"epoch": 0, "best_score": -math.inf, "best_epoch": -1, "bad_epochs": 0, "stopped": False,
             "best_metrics": None}
    resume = _resume_path(cfg, out)
    if resume is not None:
        state = _load_train_state(resume, trainer, attributes, state)
        log.info("resumed from %s at epoch %d, step %d", resume, state["epoch"], trainer.step)

    with open_dict(cfg):
        if cfg.get("logger") is not None and cfg.logger.get("name") is None and "name" in cfg.logger:
            cfg.logger.name = run_name(cfg)
    patience = tcfg.early_stopping.get("patience")
    stop_after = tcfg.get("stop_after_epochs")
    first_epoch = state["epoch"]
    with create_tracker(cfg, "train", out, dist.rank) as tracker:
        for epoch in range(first_epoch, epochs):
            if state["stopped"] or trainer.done:
                break
            loaders["train"].sampler.set_epoch(epoch)
            loaders["train"].generator.manual_seed(seed * 100_003 + epoch)
            stats = trainer.train_epoch(loaders["train"], epoch, keys["train"])
            val_preds = trainer.predict(loaders["val"], keys["val"], "val")
            thresholds = tune_thresholds(val_preds.probs, val_preds.labels, val_preds.mask, tcfg.threshold_objective)
            counting = counting_thresholds(val_preds.probs, val_preds.labels, val_preds.mask, counting_rule)
            val = metrics_of(val_preds, attributes, thresholds)
            val.update(epoch=epoch + 1, loss=val_preds.loss)
            score = _score(val, select)
            improved = state["best_metrics"] is None or score > state["best_score"] + float(
                tcfg.early_stopping.min_delta)
            state["epoch"] = epoch + 1
            if improved:
                state.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0, best_metrics=val)
            else:
                state["bad_epochs"] += 1
                if patience is not None and state["bad_epochs"] >= int(patience):
                    state["stopped"] = True
            log.info("epoch %d/%d: loss %.4f, %.0f img/s | val mean acc %.4f, mA %.4f%s", epoch + 1, epochs,
                     stats["loss"], stats["images_per_s"], val["mean_accuracy"], val["mA"],
                     " (best)" if improved else "")
            if dist.is_main:
                base = {"attributes": attributes, "model_cfg": mcfg, "data_cfg": data_cfg, "epoch": epoch + 1,
                        "step": trainer.step, "counting_thresholds": counting, "counting_rule": counting_rule}
                if improved:
                    eval_model = ema.module if ema is not None else model
                    save_checkpoint({**base, "model_state": eval_model.state_dict(), "thresholds": thresholds,
                                     "metrics": {"val": val}}, ckpt_dir / "best.pt")
                save_checkpoint({**base, "model_state": model.state_dict(), "thresholds": thresholds,
                                 "metrics": {"val": val}, "train_state": _train_state(trainer, state)},
                                ckpt_dir / "last.pt")
                tracker.log({"epoch": epoch + 1, "train/loss": stats["loss"],
                             "train/images_per_s": stats["images_per_s"], "lr": optimizer.param_groups[0]["lr"],
                             **flat_history(val, "val")}, step=trainer.step)
            D.barrier()
            if stop_after is not None and epoch + 1 - first_epoch >= int(stop_after) and epoch + 1 < epochs:
                log.info("train.stop_after_epochs=%s reached: stopping with %s; continue with "
                         "hydra.run.dir=%s train.resume=auto", stop_after, ckpt_dir / "last.pt", out)
                return {"val_mA": float(state["best_metrics"]["mA"]), "val": state["best_metrics"], "test": None,
                        "run_dir": str(out), "best": str(ckpt_dir / "best.pt"), "last": str(ckpt_dir / "last.pt"),
                        "finished": False}
            if state["stopped"]:
                log.info("early stopping: no %s gain for %d epochs (best epoch %d)", select, patience,
                         state["best_epoch"])

        best_path = ckpt_dir / "best.pt"
        D.barrier()
        best = load_checkpoint(best_path, map_location=dist.device)
        test_model = mac_from_checkpoint(best, best_path).to(dist.device)
        if trainer.channels_last:
            test_model.to(memory_format=torch.channels_last)
        test_preds = trainer.predict(loaders["test"], keys["test"], "test", model=test_model)
        test = metrics_of(test_preds, attributes, best["thresholds"])
        val_best = best["metrics"]["val"]
        log.info("test (best epoch %s): mean accuracy %.4f, mA %.4f", best["epoch"], test["mean_accuracy"],
                 test["mA"])
        if dist.is_main:
            frame = _write_test_outputs(out, val_best, test)
            tracker.log_table("test/per_attribute", frame)
            tracker.summary({"val/mA": val_best["mA"], "val/mean_accuracy": val_best["mean_accuracy"],
                             "test/mA": test["mA"], "test/mean_accuracy": test["mean_accuracy"],
                             "best_epoch": best["epoch"]})
            tracker.log_artifact(f"mac-{base_name(cfg)}", "model", [best_path], aliases=["best", "latest"],
                                 metadata={"val_mA": val_best["mA"], "test_mA": test["mA"],
                                           "attributes": len(attributes), "timm_name": mcfg["timm_name"]})
            mark_done(out)
        D.barrier()
    return {"val_mA": float(val_best["mA"]), "val": val_best, "test": test, "run_dir": str(out),
            "best": str(best_path), "last": str(ckpt_dir / "last.pt"), "finished": True}


def _train_state(trainer: Trainer, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "scaler": trainer.scaler.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "step": trainer.step, "rng": rng_state(), **state,
    }


def _load_train_state(path: Path, trainer: Trainer, attributes: list[str], state: dict[str, Any]) -> dict[str, Any]:
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
    return {k: ts.get(k, v) for k, v in state.items()}


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
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), None, D.DistInfo(device=torch.device(device)),
                      dc["mean"], dc["std"], precision="fp32", channels_last=False, progress=False)
    preds = trainer.predict(loader, ds.table.keys, split, model=model)
    return metrics_of(preds, list(ckpt["attributes"]), list(ckpt["thresholds"]))


__all__ = ["train", "evaluate_checkpoint", "model_config", "run_name"]
