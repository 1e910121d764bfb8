"""Which datasets to annotate: the ``targets`` config entries, validated, and the one door to the dataset readers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facemac.data.table import FaceTable
from facemac.errors import ConfigError, DataError
from facemac.settings.dataset import TargetSettings
from facemac.settings.runs import AnnotateRun

log = logging.getLogger(__name__)

DEMO_TARGETS = ("demo_real_a", "demo_real_b", "demo_synth_a", "demo_synth_b")


@dataclass
class TargetSpec:
    """One dataset to annotate, as the config describes it (the name is its key under ``targets``)."""

    name: str
    group: str
    format: str
    root: str | None
    geometry: str | None = None  # None: the reader's default for the format
    options: dict[str, Any] = field(default_factory=dict)  # every other key, passed on to the reader

    def reader_cfg(self) -> dict[str, Any]:
        """The plain dict the registry's ``build_table`` receives."""
        cfg = {"name": self.name, "format": self.format, "root": self.root, **self.options}
        return cfg if self.geometry is None else {**cfg, "geometry": self.geometry}


def resolve_targets(s: AnnotateRun) -> list[TargetSpec]:
    """Targets in config order, filtered by ``annotate.only``; missing roots name their key."""
    return [target_spec(name, entry, s.roots.get(name)) for name, entry in target_entries(s).items()]


def target_entries(s: AnnotateRun) -> dict[str, TargetSettings]:
    """The ``targets`` entries to annotate, by name in config order, after ``annotate.only`` (facemac.preflight
    checks each one the way ``resolve_targets`` builds it). The schema has made each a dataset entry."""
    entries = dict(s.targets or {})
    if not entries:
        raise ConfigError("no targets configured: choose a set with targets=demo|paper|casia|dcface "
                          "or add one with +targets/dataset@targets.<name>=<file>")
    only = s.annotate.only
    if only:
        only = [only] if isinstance(only, str) else list(only)
        unknown = [n for n in only if n not in entries]
        if unknown:
            raise ConfigError(f"annotate.only names unknown targets {unknown}; configured: {sorted(entries)}")
        entries = {n: entries[n] for n in only}
    return entries


def refuse_unset_group(overrides: list[str]) -> None:
    """``targets=null`` on the command line: Hydra cannot unset a config group and raises a ValueError from inside its
    composition (a bare traceback); say what works instead, before Hydra runs."""
    for o in overrides:
        if o.split("=", 1)[0].lstrip("+") == "targets" and o.split("=", 1)[-1].strip().lower() in ("null", "none", "~"):
            raise ConfigError(f"{o}: a target set cannot be unset on the command line; to annotate only your own "
                              "datasets add them and name them in annotate.only, e.g. "
                              "'+targets.mine={format: folders, root: /path/to/mine, group: synthetic}' "
                              "annotate.only=[mine] (docs/annotate.md, Targets)")


def root_not_set(name: str) -> ConfigError:
    """The one rule for a target's root, as docs/annotate.md and conf/local/README.md state it."""
    return ConfigError(f"targets.{name}.root is not set: pass targets.{name}.root=/path/to/{name}, or name it once for "
                       f"this machine as roots.{name}: /path/to/{name} in conf/local/default.yaml (conf/local/README.md)")


def target_spec(name: str, entry: TargetSettings, local_root: str | None) -> TargetSpec:
    """One target; its root is ``targets.<name>.root``, else ``roots.<name>`` (the machine's map in
    conf/local/default.yaml), else, for the demo targets only, generated. The schema has checked the group's value;
    that root, group and format are set depends on the entry and the machine's roots, so it is checked here."""
    plain = entry.plain()  # the keys the config set (an Entry dumps only those)
    if plain.get("root") in (None, "???"):
        plain["root"] = local_root
    if plain["root"] in (None, "???") and name not in DEMO_TARGETS:
        raise root_not_set(name)
    for key in ("group", "format"):
        if plain.get(key) is None:
            raise ConfigError(f"targets.{name}.{key} is required")
    root = plain.pop("root", None)
    return TargetSpec(name=name, group=plain.pop("group"), format=plain.pop("format"),
                      root=None if root is None else str(Path(str(root)).expanduser()),
                      geometry=plain.pop("geometry", None),
                      options={k: v for k, v in plain.items() if k != "name"})


def fill_demo_roots(specs: list[TargetSpec], s: AnnotateRun) -> None:
    """Targets with ``root: null`` that are demo profiles get their folder from ``ensure_demo`` (generated once)."""
    pending = [t for t in specs if t.root is None]
    if not pending:
        return
    not_demo = [t.name for t in pending if t.name not in DEMO_TARGETS]
    if not_demo:  # resolve_targets refuses these first; kept for specs built by hand
        raise root_not_set(not_demo[0])
    from facemac.data.demo import ensure_demo

    demo = ensure_demo(Path(str(s.paths.cache_dir)).expanduser(), **s.demo.plain())
    for t in pending:
        t.root = str(demo.targets[t.name])


def load_target_table(spec: TargetSpec, cache_dir: str | Path) -> FaceTable:
    """The target's image index (keys in a deterministic order). The only place annotation touches a reader."""
    from facemac.data.registry import build_table

    if spec.root is None or not Path(spec.root).exists():
        raise ConfigError(f"targets.{spec.name}.root={spec.root!r} does not exist")
    table = build_table(spec.reader_cfg(), Path(str(cache_dir)).expanduser(), prefix=f"targets.{spec.name}")
    if len(table) == 0:
        raise DataError(f"targets.{spec.name}: no images found under {spec.root}")
    return table
