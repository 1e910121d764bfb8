"""Specs ↔ JSON files, and saving them to W&B.

wandb-workspaces has no public (de)serialisation: ``_to_model()`` / ``_from_model()`` and the pydantic models of
``internal`` are what its own ``save()`` sends, so the four helpers below are the only places that touch them. A
library change fails ``tests/test_dashboard.py``'s round trip, and at a user's run it is one SpecFormatError naming
the installed version (the dashboard still saves online through the public ``save()``; see dashboard/run.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces.reports.v2 import internal as report_internal
from wandb_workspaces.workspaces import internal as workspace_internal

from facemac.errors import ConfigError, FacemacError

WORKSPACE_FILE = "workspace.json"
REPORT_FILE = "report.json"
ENTITY_PLACEHOLDER = "__WANDB_ENTITY__"  # specs written without credentials or logger.entity; publish fills it in
TESTED = ">=0.4.13,<0.5"  # the wandb-workspaces versions whose private (de)serialisation the tests cover
T = TypeVar("T")


class SpecFormatError(FacemacError):
    """wandb-workspaces' private spec (de)serialisation is missing, has a new signature or fails on our specs."""


def _private(what: str, call: Callable[[], T]) -> T:
    """Run one call into wandb-workspaces' private API; any failure becomes one SpecFormatError naming the version."""
    try:
        return call()
    except Exception as e:  # noqa: BLE001 - AttributeError, TypeError, pydantic errors, ...: the API moved
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("wandb-workspaces")
        except PackageNotFoundError:
            installed = "?"
        detail = (str(e).splitlines() or [""])[0]  # pydantic's errors run over many lines; the first names them
        raise SpecFormatError(f"wandb-workspaces {installed} cannot {what} through its private _to_model/_from_model "
                              f"({e.__class__.__name__}: {detail}); facemac is tested with wandb-workspaces{TESTED}: "
                              f"pip install 'wandb-workspaces{TESTED}'") from e


def workspace_json(w: ws.Workspace) -> str:
    return _private("write a workspace spec",
                    lambda: w._to_model().model_dump_json(by_alias=True, exclude_none=True, indent=1))


def report_json(r: wr.Report) -> str:
    return _private("write a report spec",
                    lambda: r._to_model().model_dump_json(by_alias=True, exclude_none=True, indent=1))


def load_workspace(text: str) -> ws.Workspace:
    return _restore_layouts(_private("read a workspace spec", lambda: ws.Workspace._from_model(
        workspace_internal.View.model_validate_json(text))), text)


def load_report(text: str) -> wr.Report:
    return _restore_layouts(_private("read a report spec", lambda: wr.Report._from_model(
        report_internal.ReportViewspec.model_validate_json(text))), text)


def _json_panels(node) -> list[dict]:
    """Every panel of a serialized spec (a dict with a viewType and a layout), in document order."""
    if isinstance(node, dict):
        if "viewType" in node and isinstance(node.get("layout"), dict):
            return [node]
        return [p for v in node.values() for p in _json_panels(v)]
    if isinstance(node, list):
        return [p for v in node for p in _json_panels(v)]
    return []


def _object_panels(obj) -> list:
    if isinstance(obj, ws.Workspace):
        return [p for s in obj.sections for p in s.panels]
    return [p for b in obj.blocks if isinstance(b, wr.PanelGrid) for p in b.panels]


def _restore_layouts(obj, text: str):
    """wandb-workspaces 0.4 drops the layout of table (Weave) panels when it loads a spec; put every panel's size
    and place back from the JSON, so publishing written specs shows what the dry run wrote."""
    specs, panels = _json_panels(json.loads(text)), _object_panels(obj)
    if len(specs) == len(panels):
        for panel, spec in zip(panels, specs):
            panel.layout = wr.Layout(**{k: spec["layout"][k] for k in ("x", "y", "w", "h")})
    return obj


def write_specs(folder: Path, workspace: ws.Workspace, report: wr.Report | None) -> list[Path]:
    """workspace.json (and report.json) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / WORKSPACE_FILE]
    paths[0].write_text(workspace_json(workspace))
    if report is not None:
        paths.append(folder / REPORT_FILE)
        paths[1].write_text(report_json(report))
    return paths


def read_specs(folder: Path, entity: str | None) -> tuple[ws.Workspace | None, wr.Report | None]:
    """The specs a dry run wrote, with the entity filled in where they hold the placeholder."""
    files = {name: folder / name for name in (WORKSPACE_FILE, REPORT_FILE) if (folder / name).is_file()}
    if not files:
        raise ConfigError(f"publish={folder}: holds neither {WORKSPACE_FILE} nor {REPORT_FILE} "
                          "(the run folder of a `python -m facemac.dashboard` dry run)")
    texts = {name: path.read_text() for name, path in files.items()}
    if any(ENTITY_PLACEHOLDER in t for t in texts.values()):
        if not entity:
            raise ConfigError(f"the specs in {folder} were written without an entity: pass dashboard.entity=<team or "
                              "user> (or logger.entity=...) to publish them")
        texts = {name: t.replace(ENTITY_PLACEHOLDER, entity) for name, t in texts.items()}
    return ((load_workspace(texts[WORKSPACE_FILE]) if WORKSPACE_FILE in texts else None),
            (load_report(texts[REPORT_FILE]) if REPORT_FILE in texts else None))


def save(workspace: ws.Workspace | None, report: wr.Report | None) -> dict[str, str]:
    """Save both to W&B (network, credentials); {"workspace": url, "report": url}."""
    urls = {}
    if workspace is not None:
        urls["workspace"] = workspace.save().url
    if report is not None:
        urls["report"] = report.save().url
    return urls
