"""Names for compared runs that say how they differ: ``optim.lr=0.001`` rather than ``runs/2026-11-29_14-02-11``.

A run is named by the config values that are not the same in every compared run of its stage (paths, loggers and
other noise left out, and values that are themselves paths: those name folders, not choices), at most
``MAX_KEYS`` of them; a run folder's path tail (the shortest that tells the runs apart) is the fallback when the
configs do not tell the runs apart, and is kept in front when they do but only partly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

MAX_KEYS = 3
MAX_CHARS = 60
# config keys that differ between any two runs without saying anything about the experiment
NOISE_PREFIXES = ("paths.", "logger.", "hydra.")
NOISE_KEYS = {"task_name"}


class Run(Protocol):
    """What naming needs of a compared run (facemac.compare.runs.Run)."""

    path: Path
    stage: str
    config: dict[str, Any]
    label: str


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"optim.lr": "0.003", ...}: dotted keys, values as JSON text so lists and None compare too."""
    out: dict[str, str] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, str) else json.dumps(v)
    return out


def path_tails(runs: list[Run]) -> list[str]:
    """The shortest path tails (two parts at least) that tell the runs apart."""
    parts = [r.path.resolve().parts for r in runs]
    longest = max((len(p) for p in parts), default=1)
    labels = ["/".join(p[-2:]) for p in parts]
    for k in range(min(2, longest), longest + 1):
        labels = ["/".join(p[-k:]) for p in parts]
        if len(set(labels)) == len(labels):
            break
    return labels


def _differences(runs: list[Run]) -> list[str]:
    """Per run, ``key=value`` for the choices (not paths) in which the runs of one stage differ."""
    flat = [flatten(r.config) if r.config else None for r in runs]
    known = [f for f in flat if f is not None]
    if len(known) < 2:
        return ["" for _ in runs]
    keys = sorted({k for f in known for k in f if not k.startswith(NOISE_PREFIXES) and k not in NOISE_KEYS})
    differ = [k for k in keys if len({f.get(k, "<unset>") for f in known}) > 1
              and not any("/" in f.get(k, "") for f in known)]
    out = []
    for f in flat:
        text = ", ".join(f"{k}={f.get(k, '<unset>')}" for k in differ[:MAX_KEYS]) if f is not None else ""
        if len(differ) > MAX_KEYS and text:
            text += ", …"
        out.append(text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…")
    return out


def label_runs(runs: list[Run]) -> None:
    """Set ``Run.label`` for every run: its differing choices when they tell it apart, else its path tail."""
    tails = path_tails(runs)
    labels = list(tails)
    for stage in dict.fromkeys(r.stage for r in runs):
        idx = [i for i, r in enumerate(runs) if r.stage == stage]
        diffs = _differences([runs[i] for i in idx])
        for i, d in zip(idx, diffs):
            labels[i] = d or tails[i]
    if len(set(labels)) != len(labels):  # configs alone do not tell every run apart: the path first
        labels = [t if lab == t else f"{t} ({lab})" for t, lab in zip(tails, labels)]
    for r, lab in zip(runs, labels):
        r.label = lab
