"""The analyze stage: inputs -> streamed counts -> rates, KL tables, figures, report, W&B; ``run(cfg)`` is the API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from facemac.analysis.correction.choose import (add_validation, build_corrections, describe_corrections,
                                                wants_validation)
from facemac.analysis.correction.quality import mac_quality
from facemac.analysis.counts import CountAccumulator, DatasetCounts
from facemac.analysis.examples import driver_attributes, write_examples
from facemac.analysis.audited_faces import log_audited_faces
from facemac.analysis.identity import IdentityCounter, identity_tables
from facemac.analysis.identity_report import IdentityOutputs, write_identity_outputs
from facemac.analysis.inputs import GROUPS, DatasetInput, collect_inputs
from facemac.analysis.logged import (IDENTITY_COMPARE, IDENTITY_STATS, KL_ATTRIBUTES, KL_PAIRS, POOLED_SUFFIX, RATES,
                                     figure_key, pooled_kl_key)
from facemac.analysis.plots import make_figures
from facemac.analysis.provenance import check_labellers, dropped_attributes
from facemac.analysis.report import ReportContext, headline, write_report
from facemac.analysis.tables import Tables, compute_tables
from facemac.errors import ConfigError
from facemac.lineage import DIVERGENCE_ARTIFACT, DIVERGENCE_TYPE, declare_annotations
from facemac.progress import progress_bar
from facemac.settings.analyze import AnalyzeSettings
from facemac.stage import Stage, StageContext, run_stage

log = logging.getLogger(__name__)



def choose_attributes(datasets: list[DatasetInput], requested) -> list[str]:
    """The configured list, or the attributes every input has (in the first input's order)."""
    common = [a for a in datasets[0].attributes if all(a in d.attributes for d in datasets[1:])]
    if requested is None:
        if not common:
            raise ConfigError("analyze.attributes: the inputs share no attribute; "
                              + "; ".join(f"{d.name}: {d.attributes[:5]}..." for d in datasets))
        return common
    requested = [str(a) for a in requested]
    unknown = [a for a in requested if a not in common]
    if unknown:
        raise ConfigError(f"analyze.attributes: {unknown} are not attributes of every input; valid: {common}")
    if len(set(requested)) != len(requested):
        raise ConfigError("analyze.attributes: a name appears more than once")
    return requested


def choose_joint(attributes: list[str], requested) -> list[str]:
    """Attributes whose combinations form the joint distribution (default: all analysed ones, at most 64)."""
    if requested is None:
        if len(attributes) > 64:
            raise ConfigError(f"analyze.joint_attributes: {len(attributes)} attributes do not fit a 64-bit combination "
                              "code; set analyze.joint_attributes=[...] (at most 64) or [] to skip the joint KL")
        return list(attributes)
    requested = [str(a) for a in requested]
    unknown = [a for a in requested if a not in attributes]
    if unknown:
        raise ConfigError(f"analyze.joint_attributes: {unknown} are not analysed attributes; valid: {attributes}")
    if len(requested) > 64:
        raise ConfigError(f"analyze.joint_attributes: {len(requested)} given, at most 64 fit a combination code")
    return requested


def count_dataset(d: DatasetInput, attributes: list[str], joint: list[str], s: AnalyzeSettings,
                  per_identity: bool = False, moments: bool = False) -> DatasetCounts:
    """Stream one dataset once and keep only counts (and, with ``per_identity``, hard-label counts per identity)."""
    thresholds = np.array([d.thresholds.get(a, 0.5) for a in attributes], dtype=np.float32)
    acc = CountAccumulator(thresholds, np.array([attributes.index(a) for a in joint], dtype=np.int64),
                           soft=s.mode == "soft", track_units=s.n_boot > 0, moments=moments)
    identities = IdentityCounter(acc) if per_identity else None
    total = d.details.get("num_images")
    with progress_bar(total=total, desc=f"count {d.name}", unit="img", leave=False) as bar:
        for batch in d.batches(attributes, s.rows_per_batch, s.min_reliability if d.is_prediction else None):
            acc.add(batch)
            if identities is not None:
                identities.add(batch)
            bar.update(len(batch))
    result = acc.result()
    if identities is not None:
        result.per_identity = identities.result(result)
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


def single_member_pools(pooled: dict[str, list[int]], datasets: list[DatasetInput]) -> dict[str, str]:
    """Pooled name -> its only member, for groups holding one dataset: the pooled rows equal the member's, so figures
    and report show the member alone (the CSVs keep both rows: their names are part of the interface)."""
    return {f"{g}{POOLED_SUFFIX}": datasets[m[0]].name for g, m in pooled.items() if len(m) == 1}


def shown_pairs(focus: list[tuple[str, str]], alias: dict[str, str]) -> list[tuple[str, str]]:
    """``focus`` with single-member pools replaced by their member, duplicates and self-pairs dropped, order kept."""
    out: list[tuple[str, str]] = []
    for p, q in focus:
        pair = (alias.get(p, p), alias.get(q, q))
        if pair[0] != pair[1] and pair not in out:
            out.append(pair)
    return out


def write_outputs(output_dir: Path, tables: Tables) -> dict[str, Path]:
    """The CSVs whose names are part of the interface."""
    paths = {"rates": output_dir / "rates.csv", "kl_attributes": output_dir / "kl_attributes.csv",
             "kl_pairs": output_dir / "kl_pairs.csv"}
    tables.rates.to_csv(paths["rates"], index=False)
    tables.kl_attributes.to_csv(paths["kl_attributes"], index=False)
    tables.kl_pairs.to_csv(paths["kl_pairs"], index=False)
    return paths


ANALYZE = Stage("analyze")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Analyse the configured inputs and write rates/KL tables, figures and report.md into the run directory."""
    return run_stage(cfg, ANALYZE, _analyze)


def _analyze(ctx: StageContext) -> dict[str, Any]:
    output_dir, tracker = ctx.out, ctx.tracker
    s, seed = ctx.settings.analyze, ctx.settings.seed  # validated by the schema (facemac/settings/analyze.py)
    ident, shown = s.identity, s.examples
    datasets = collect_inputs(ctx.settings, tracker)
    declare_annotations(tracker, [d.path for d in datasets if d.is_prediction])  # lineage, by content
    for d in datasets:
        d.use_label_rule(s.label_rule)
        log.info("input: %s", d.describe())
    labelled_by = check_labellers(datasets, s.allow_mixed_checkpoints)  # one MAC for every annotated input
    attributes = choose_attributes(datasets, s.attributes)
    dropped = dropped_attributes(datasets, attributes)  # named in the log and the report, never silently
    joint = choose_joint(attributes, s.joint_attributes)
    corrections = build_corrections(datasets, attributes, s.correction, s.audit, s.mode == "soft",
                                    s.min_reliability, s.audit_power_tuning)
    counts = [count_dataset(d, attributes, joint, s, ident.enabled, wants_validation(d, c, s.correction))
              for d, c in zip(datasets, corrections)]
    corrections = add_validation(corrections, datasets, counts, attributes, s.correction, s.label_rule,
                                 s.mode == "soft", seed)
    pooled = pool_members(datasets) if s.pooled else {}
    taken = {d.name for d in datasets}
    clash = [f"{g}{POOLED_SUFFIX}" for g in pooled if f"{g}{POOLED_SUFFIX}" in taken]
    if clash:
        raise ConfigError(f"inputs: dataset names {clash} are reserved for pooled groups; rename them")
    names = [d.name for d in datasets] + [f"{g}{POOLED_SUFFIX}" for g in pooled]
    groups = [d.group for d in datasets] + list(pooled)
    tables = compute_tables(names, groups, attributes, counts, list(pooled.values()), s.alpha, s.ci_level,
                            s.n_boot, seed, soft=s.mode == "soft", with_dropped=s.min_reliability is not None,
                            joint_columns=np.array([attributes.index(a) for a in joint], np.int64),
                            corrections=corrections)
    paths = write_outputs(output_dir, tables)
    alias = single_member_pools(pooled, datasets)  # one dataset per group: its pool is not shown twice
    focus = shown_pairs(focus_pairs(names, groups, len(datasets)), alias)
    figures = make_figures(tables.rates[~tables.rates.dataset.isin(list(alias))], tables.kl_attributes, focus,
                           output_dir / "figures")
    identity = None
    if ident.enabled:  # within-identity statistics (analysis/identity.py)
        identity = write_identity_outputs(
            output_dir, identity_tables(names, groups, attributes, [c.per_identity for c in counts],
                                        list(pooled.values()), focus, ident, s.n_boot, s.ci_level, seed),
            focus, dict(zip(names, groups)), s.top_k, s.ci_level, s.n_boot, ident.min_images, hidden=set(alias))
        paths.update(identity.paths)
        figures += identity.figures
    group_of = dict(zip(names, groups))
    rs = [(p, q) for p, q in focus if group_of.get(p) == "real" and group_of.get(q) == "synthetic"]
    examples = write_examples(output_dir, datasets, driver_attributes(tables.kl_attributes, rs or focus,
                                                                      shown.attributes, attributes),
                              attributes, tables.rates, shown)  # the faces behind the drivers (analysis/examples.py)
    figures += list(examples.strips.values())
    settings = {"mode": s.mode, "label_rule": s.label_rule, "alpha": s.alpha, "n_boot": s.n_boot, "seed": seed,
                "level": s.ci_level,
                "attributes": attributes, "joint_attributes": joint, "min_reliability": s.min_reliability,
                "pooled_members": {f"{g}{POOLED_SUFFIX}": [datasets[i].name for i in m] for g, m in pooled.items()},
                "identity": {"enabled": ident.enabled, "min_images": ident.min_images,
                             "levels": dict(ident.levels or {})},
                "dropped_attributes": dropped,
                "mixed_checkpoints": labelled_by.by_checkpoint if labelled_by.mixed else None}
    info = [{"name": d.name, "group": d.group, "kind": d.kind, "rows": c.rows, "path": str(d.path),
             "checkpoint_sha256": d.details.get("checkpoint_sha256"),
             "label_thresholds": d.details.get("label_thresholds"),
             "labels_of": d.details.get("base_name") if not d.is_prediction else None}
            for d, c in zip(datasets, counts)]
    quality = mac_quality(datasets, corrections, attributes, s.label_rule)
    settings["corrections"] = describe_corrections(datasets, corrections, pooled, s.correction)
    head = headline(tables.rates, tables.kl_attributes, tables.kl_pairs, focus, group_of, set(alias), quality)
    report = write_report(output_dir / "report.md", tables.rates, tables.kl_attributes, tables.kl_pairs,
                          ReportContext(datasets=info, settings=settings, headline=head,
                                        pooled=[n for n in names[len(datasets):] if n not in alias], aliases=alias,
                                        focus=focus, top_k=s.top_k,
                                        sections=(identity.sections if identity else [])
                                        + examples.report_lines(output_dir),
                                        quality=quality, corrections=settings["corrections"],
                                        files=(identity.files if identity else []) + examples.file_lines()))
    gallery = [output_dir / "gallery"] if examples.galleries else []
    _track(tracker, tables, figures, [*paths.values(), report, output_dir / "figures", *gallery], settings, names,
           identity)
    log_audited_faces(tracker, s.audit, datasets, shown.audit_faces, shown.size)  # W&B: both labels
    log.info("%s", head)  # the console shows the finding, not only where the files are
    log.info("analysis written to %s (report: %s)", output_dir, report)
    return {"output_dir": output_dir, "tables": tables, "datasets": names, "attributes": attributes,
            "headline": head,
            "figures": figures, "report": report, "settings": settings, "examples": examples,
            "identity": identity.tables if identity else None}


def _track(tracker, tables: Tables, figures: list[Path], files: list[Path], settings: dict, names: list[str],
           identity: IdentityOutputs | None = None) -> None:
    """Aggregates as W&B tables, figures as images, and the divergence artifact (CSVs + report + figures)."""
    if not tracker.enabled:
        return
    tracker.log_table(RATES, tables.rates)
    tracker.log_table(KL_ATTRIBUTES, tables.kl_attributes)
    tracker.log_table(KL_PAIRS, tables.kl_pairs)
    if identity is not None:
        tracker.log_table(IDENTITY_STATS, identity.tables.stats)
        tracker.log_table(IDENTITY_COMPARE, identity.tables.compare)
    for fig in figures:
        tracker.log_image(figure_key(fig), fig)
    summary = {pooled_kl_key(r.p, r.q): float(r.kl_mean) for r in tables.kl_pairs.itertuples()
               if r.p.endswith(POOLED_SUFFIX) and r.q.endswith(POOLED_SUFFIX)}
    if identity is not None:
        summary["identity_skipped"] = sorted(identity.tables.skipped)
    tracker.summary({**summary, "alpha": settings["alpha"], "mode": settings["mode"], "n_boot": settings["n_boot"]})
    meta = {k: v for k, v in settings.items() if k != "pooled_members"}
    tracker.log_artifact(DIVERGENCE_ARTIFACT, type=DIVERGENCE_TYPE, paths=files, metadata={**meta, "datasets": names},
                         group_alias=True)  # `divergence:<group>`: the version a dashboard report on the group names

