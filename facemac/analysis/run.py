"""The analyze stage: inputs -> streamed counts -> rates, KL tables, figures, report, W&B; ``run(cfg)`` is the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from facemac.analysis.counts import CountAccumulator, DatasetCounts
from facemac.analysis.inputs import GROUPS, DatasetInput, collect_inputs
from facemac.analysis.plots import make_figures
from facemac.analysis.report import ReportContext, write_report
from facemac.analysis.tables import Tables, compute_tables
from facemac.errors import ConfigError
from facemac.labelrule import LABEL_RULES
from facemac.runs import mark_done
from facemac.tracking import create_tracker

log = logging.getLogger(__name__)

POOLED_SUFFIX = "(pooled)"


@dataclass
class Settings:
    """Validated analysis options (every bad value is a ConfigError naming its key)."""

    mode: str
    alpha: float
    level: float
    n_boot: int
    seed: int
    min_reliability: float | None
    batch_size: int
    pooled: bool
    top_k: int
    label_rule: str = "counting"

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> Settings:
        mode = str(cfg.get("mode", "hard"))
        if mode not in ("hard", "soft"):
            raise ConfigError(f"mode={mode!r}: use mode=hard (thresholded labels) or mode=soft (mean probability)")
        alpha = float(cfg.get("alpha", 0.5))
        if not alpha >= 0:
            raise ConfigError(f"alpha={alpha}: the smoothing pseudo-count must be >= 0")
        level = float(cfg.get("ci_level", 0.95))
        if not 0 < level < 1:
            raise ConfigError(f"ci_level={level}: must lie in (0, 1)")
        n_boot = int(cfg.get("n_boot", 200))
        if n_boot < 0:
            raise ConfigError(f"n_boot={n_boot}: use 0 to switch the bootstrap off")
        rel = cfg.get("min_reliability")
        if rel is not None and not 0 <= float(rel) <= 1:
            raise ConfigError(f"min_reliability={rel}: must lie in [0, 1] or be null")
        batch = int(cfg.get("batch_size", 65536))
        if batch <= 0:
            raise ConfigError(f"batch_size={batch}: must be positive")
        rule = str(OmegaConf.select(cfg, "analyze.label_rule", default="counting"))
        if rule not in LABEL_RULES:
            raise ConfigError(f"analyze.label_rule={rule!r}: use counting (the checkpoint's thresholds for faithful "
                              "counts) or reporting (its balanced-accuracy thresholds)")
        return cls(mode=mode, alpha=alpha, level=level, n_boot=n_boot, seed=int(cfg.get("seed", 0)),
                   min_reliability=None if rel is None else float(rel), batch_size=batch,
                   pooled=bool(cfg.get("pooled", True)), top_k=int(cfg.get("top_k", 5)), label_rule=rule)


def choose_attributes(datasets: list[DatasetInput], requested) -> list[str]:
    """The configured list, or the attributes every input has (in the first input's order)."""
    common = [a for a in datasets[0].attributes if all(a in d.attributes for d in datasets[1:])]
    if requested is None:
        if not common:
            raise ConfigError("attributes: the inputs share no attribute; "
                              + "; ".join(f"{d.name}: {d.attributes[:5]}..." for d in datasets))
        return common
    requested = [str(a) for a in requested]
    unknown = [a for a in requested if a not in common]
    if unknown:
        raise ConfigError(f"attributes: {unknown} are not attributes of every input; valid: {common}")
    if len(set(requested)) != len(requested):
        raise ConfigError("attributes: a name appears more than once")
    return requested


def choose_joint(attributes: list[str], requested) -> list[str]:
    """Attributes whose combinations form the joint distribution (default: all analysed ones, at most 64)."""
    if requested is None:
        if len(attributes) > 64:
            raise ConfigError(f"joint_attributes: {len(attributes)} attributes do not fit a 64-bit combination code; "
                              "set joint_attributes=[...] (at most 64) or joint_attributes=[] to skip the joint KL")
        return list(attributes)
    requested = [str(a) for a in requested]
    unknown = [a for a in requested if a not in attributes]
    if unknown:
        raise ConfigError(f"joint_attributes: {unknown} are not analysed attributes; valid: {attributes}")
    if len(requested) > 64:
        raise ConfigError(f"joint_attributes: {len(requested)} given, at most 64 fit a combination code")
    return requested


def count_dataset(d: DatasetInput, attributes: list[str], joint: list[str], s: Settings) -> DatasetCounts:
    """Stream one dataset once and keep only counts."""
    thresholds = np.array([d.thresholds.get(a, 0.5) for a in attributes], dtype=np.float32)
    acc = CountAccumulator(thresholds, np.array([attributes.index(a) for a in joint], dtype=np.int64),
                           soft=s.mode == "soft", track_units=s.n_boot > 0)
    total = d.details.get("num_images")
    with tqdm(total=total, desc=f"count {d.name}", unit="img", leave=False) as bar:
        for batch in d.batches(attributes, s.batch_size, s.min_reliability if d.is_prediction else None):
            acc.add(batch)
            bar.update(len(batch))
    result = acc.result()
    if s.min_reliability is not None and d.is_prediction and not d.details.get("has_reliability"):
        log.warning("%s has no reliability columns (annotate with MC dropout); min_reliability not applied", d.name)
    log.info("%s: %d rows counted%s", d.name, result.rows,
             f", {result.units.num_identities} identities" if result.units is not None else "")
    return result


def pool_members(datasets: list[DatasetInput]) -> dict[str, list[int]]:
    """Group -> member indices for the pooled pseudo-datasets (the MAC's view only, when any annotation is present)."""
    predicted = any(d.is_prediction for d in datasets)
    out = {g: [i for i, d in enumerate(datasets) if d.group == g and (d.is_prediction or not predicted)]
           for g in GROUPS}
    return out if all(out.values()) else {}


def focus_pairs(names: list[str], groups: list[str], num_base: int) -> list[tuple[str, str]]:
    """Unordered pairs worth a figure or a report section, oriented real-first: every pair of input datasets, and the
    two pooled groups against each other (a pooled group against its own members says little)."""
    order = {"real": 0, "synthetic": 1}
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if (i < num_base) != (j < num_base):
                continue
            a, b = (i, j) if order.get(groups[i], 2) <= order.get(groups[j], 2) else (j, i)
            out.append((names[a], names[b]))
    pooled = [k for k, (x, y) in enumerate(out) if x not in names[:num_base]]
    return [out[k] for k in pooled] + [p for k, p in enumerate(out) if k not in pooled]


def write_outputs(output_dir: Path, tables: Tables) -> dict[str, Path]:
    """The CSVs whose names are part of the interface."""
    paths = {"rates": output_dir / "rates.csv", "kl_attributes": output_dir / "kl_attributes.csv",
             "kl_pairs": output_dir / "kl_pairs.csv"}
    tables.rates.to_csv(paths["rates"], index=False)
    tables.kl_attributes.to_csv(paths["kl_attributes"], index=False)
    tables.kl_pairs.to_csv(paths["kl_pairs"], index=False)
    return paths


def run(cfg: DictConfig) -> dict[str, Any]:
    """Analyse the configured inputs and write rates/KL tables, figures and report.md into the run directory."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    s = Settings.from_cfg(cfg)
    with create_tracker(cfg, "analyze", output_dir) as tracker:
        datasets = collect_inputs(cfg, tracker)
        for d in datasets:
            d.use_label_rule(s.label_rule)
            log.info("input: %s", d.describe())
        attributes = choose_attributes(datasets, cfg.get("attributes"))
        joint = choose_joint(attributes, cfg.get("joint_attributes"))
        counts = [count_dataset(d, attributes, joint, s) for d in datasets]
        pooled = pool_members(datasets) if s.pooled else {}
        taken = {d.name for d in datasets}
        clash = [f"{g}{POOLED_SUFFIX}" for g in pooled if f"{g}{POOLED_SUFFIX}" in taken]
        if clash:
            raise ConfigError(f"inputs: dataset names {clash} are reserved for pooled groups; rename them")
        names = [d.name for d in datasets] + [f"{g}{POOLED_SUFFIX}" for g in pooled]
        groups = [d.group for d in datasets] + list(pooled)
        tables = compute_tables(names, groups, attributes, counts, list(pooled.values()), s.alpha, s.level,
                                s.n_boot, s.seed, soft=s.mode == "soft", with_dropped=s.min_reliability is not None,
                                joint_columns=np.array([attributes.index(a) for a in joint], np.int64))
        paths = write_outputs(output_dir, tables)
        focus = focus_pairs(names, groups, len(datasets))
        figures = make_figures(tables.rates, tables.kl_attributes, focus, output_dir / "figures")
        settings = {"mode": s.mode, "label_rule": s.label_rule, "alpha": s.alpha, "n_boot": s.n_boot, "seed": s.seed,
                    "level": s.level,
                    "attributes": attributes, "joint_attributes": joint, "min_reliability": s.min_reliability,
                    "pooled_members": {f"{g}{POOLED_SUFFIX}": [datasets[i].name for i in m] for g, m in pooled.items()}}
        info = [{"name": d.name, "group": d.group, "kind": d.kind, "rows": c.rows, "path": str(d.path),
                 "checkpoint_sha256": d.details.get("checkpoint_sha256"),
                 "label_thresholds": d.details.get("label_thresholds"),
                 "labels_of": d.details.get("base_name") if not d.is_prediction else None}
                for d, c in zip(datasets, counts)]
        report = write_report(output_dir / "report.md", tables.rates, tables.kl_attributes, tables.kl_pairs,
                              ReportContext(datasets=info, settings=settings, pooled=names[len(datasets):],
                                            focus=focus, top_k=s.top_k))
        _track(tracker, tables, figures, [*paths.values(), report, output_dir / "figures"], settings, names)
    mark_done(output_dir)
    log.info("analysis written to %s", output_dir)
    return {"output_dir": output_dir, "tables": tables, "datasets": names, "attributes": attributes,
            "figures": figures, "report": report, "settings": settings}


def _track(tracker, tables: Tables, figures: list[Path], files: list[Path], settings: dict, names: list[str]) -> None:
    """Aggregates as W&B tables, figures as images, and the divergence artifact (CSVs + report + figures)."""
    if not tracker.enabled:
        return
    tracker.log_table("rates", tables.rates)
    tracker.log_table("kl_attributes", tables.kl_attributes)
    tracker.log_table("kl_pairs", tables.kl_pairs)
    for fig in figures:
        tracker.log_image(f"figures/{fig.stem}", fig)
    summary = {f"kl_mean/{r.p}||{r.q}": float(r.kl_mean) for r in tables.kl_pairs.itertuples()
               if r.p.endswith(POOLED_SUFFIX) and r.q.endswith(POOLED_SUFFIX)}
    tracker.summary({**summary, "alpha": settings["alpha"], "mode": settings["mode"], "n_boot": settings["n_boot"]})
    meta = {k: v for k, v in settings.items() if k != "pooled_members"}
    tracker.log_artifact("divergence", type="divergence", paths=files, metadata={**meta, "datasets": names})

