"""``python -m facemac.dashboard``: build the workspace and the group report, save them or write their specs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from facemac.errors import ConfigError, FacemacError
from facemac.runs import mark_done

log = logging.getLogger(__name__)


class PublishError(FacemacError):
    """W&B did not take the workspace or report (network, permissions, entity); the specs stay on disk."""


def swept_keys(path: Path | None = None) -> list[str]:
    """The config keys ``hparams_search=optuna`` searches over (its ``hydra.sweeper.params``)."""
    if path is None:
        from facemac.conf_dir import conf_dir

        path = conf_dir() / "hparams_search" / "optuna.yaml"
    if not path.is_file():
        return []
    params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params") or {}
    return [str(k) for k in params.keys()]


def target_datasets(cfg: DictConfig) -> list[str]:
    """``dashboard.datasets``, else the dataset names of the composed ``targets`` (annotate's naming)."""
    given = OmegaConf.select(cfg, "dashboard.datasets")
    if given is not None:
        return [str(d) for d in given]
    targets = cfg.get("targets")
    if targets is None:
        return []
    if OmegaConf.is_list(targets):
        return [str(t.get("name")) for t in targets if t.get("name")]
    return [str(k) for k in targets.keys()]


def build_target(cfg: DictConfig, entity: str | None):
    from facemac.dashboard.publish import ENTITY_PLACEHOLDER
    from facemac.dashboard.specs import DashboardTarget
    from facemac.tracking import group_alias_of

    d = cfg.dashboard
    group = cfg.get("group")
    group = str(group) if group not in (None, "") else None
    sweep = d.get("sweep_params")
    return DashboardTarget(
        entity=entity or ENTITY_PLACEHOLDER, project=str(d.project), workspace_name=str(d.workspace_name),
        group=group, report_title=d.get("report_title"),
        sweep_params=[str(k) for k in sweep] if sweep is not None else swept_keys(),
        datasets=target_datasets(cfg), divergence_alias=group_alias_of(group) if group else None)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Save the workspace (and report) with credentials; otherwise write workspace.json / report.json."""
    from facemac.extras import DASHBOARD, require

    require(DASHBOARD, "python -m facemac.dashboard")
    from facemac.dashboard import publish as P
    from facemac.tracking import default_entity, has_wandb_credentials

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    online = has_wandb_credentials() and not bool(cfg.dashboard.dry_run)
    entity = cfg.dashboard.get("entity") or (default_entity() if online else None)
    if cfg.get("publish"):
        if not has_wandb_credentials():
            raise ConfigError("publish=...: saving to W&B needs credentials (wandb login, or WANDB_API_KEY)")
        if not entity:
            entity = default_entity()
        folder = Path(str(cfg.publish)).expanduser()
        workspace, report = P.read_specs(folder, entity)
        try:
            urls = P.save(workspace, report)
        except Exception as e:  # noqa: BLE001 - as above
            raise PublishError(f"saving the specs in {folder} to W&B failed ({type(e).__name__}: {e})") from e
        return _finish(out, urls, [])

    from facemac.dashboard.specs import build_report, build_workspace

    target = build_target(cfg, entity)
    workspace = build_workspace(target)
    report = build_report(target) if target.group else None
    if report is None:
        log.info("no group given: workspace only (pass group=<W&B group> for a report on one experiment)")
    try:
        files = P.write_specs(out, workspace, report)
    except P.SpecFormatError as e:
        if not online:  # the specs are all a dry run makes
            raise
        log.warning("%s; saving to W&B directly instead (no specs on disk to publish later)", e)
        files = []
    urls: dict[str, str] = {}
    if online:
        try:
            urls = P.save(workspace, report)
        except Exception as e:  # network, permissions, an unknown entity: the specs are written, say how to retry
            retry = (f"the specs are in {out}: retry with python -m facemac.dashboard publish={out}" if files
                     else "retry this command")
            raise PublishError(f"saving to W&B failed ({type(e).__name__}: {e}); {retry}") from e
    else:
        why = "dashboard.dry_run=true" if cfg.dashboard.dry_run else "no W&B credentials"
        log.info("%s: specs written to %s; after `wandb login` (and `wandb sync` of the offline runs, train → "
                 "annotate → analyze), publish them with:\n  python -m facemac.dashboard publish=%s%s", why,
                 ", ".join(str(f) for f in files), out,
                 "" if cfg.dashboard.get("entity") else " dashboard.entity=<your W&B entity>")
    return _finish(out, urls, files)


def _finish(out: Path, urls: dict[str, str], files: list[Path]) -> dict[str, Any]:
    for kind, url in urls.items():
        log.info("W&B %s: %s", kind, url)
    if urls:
        (out / "urls.json").write_text(json.dumps(urls, indent=1))
    mark_done(out)
    return {"output_dir": out, "files": files, "urls": urls}
