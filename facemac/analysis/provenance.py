"""What the inputs have in common before they are compared: which MAC labelled each annotated dataset, and which
attributes some input lacks.

A KL between two datasets labelled by different classifiers measures the classifiers' difference as much as the
data's, so mixed checkpoints are refused unless ``analyze.allow_mixed_checkpoints`` says the comparison is meant; and
every attribute left out because an input lacks it is named, never dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from facemac.analysis.inputs import DatasetInput
from facemac.errors import ConfigError

log = logging.getLogger(__name__)

SHA_SHOWN = 16  # hex digits of a checkpoint's SHA-256 in messages and the report (as its Inputs table shows them)


@dataclass(frozen=True)
class Labellers:
    """The checkpoints (by SHA-256) that labelled the annotated inputs, and the datasets each labelled."""

    by_checkpoint: dict[str, list[str]]

    @property
    def mixed(self) -> bool:
        return len(self.by_checkpoint) > 1

    def describe(self) -> str:
        return "; ".join(f"checkpoint sha256 {sha[:SHA_SHOWN]}… labelled {', '.join(names)}"
                         for sha, names in self.by_checkpoint.items())


def labellers(datasets: list[DatasetInput]) -> Labellers:
    """Checkpoint SHA-256 → annotated datasets, in input order (label files are people's labels: not counted)."""
    out: dict[str, list[str]] = {}
    for d in datasets:
        if d.is_prediction:
            out.setdefault(str(d.details.get("checkpoint_sha256") or "unknown"), []).append(d.name)
    return Labellers(out)


def check_labellers(datasets: list[DatasetInput], allow_mixed: bool) -> Labellers:
    """Refuse inputs annotated by different MACs unless ``allow_mixed`` (then warn)."""
    found = labellers(datasets)
    if not found.mixed:
        return found
    if not allow_mixed:
        raise ConfigError(f"inputs were annotated by {len(found.by_checkpoint)} different MACs ({found.describe()}): "
                          "a KL between datasets labelled by different classifiers measures the classifiers' "
                          "difference as much as the data's; annotate every dataset with one checkpoint, or set "
                          "analyze.allow_mixed_checkpoints=true to compare them anyway")
    log.warning("analyze.allow_mixed_checkpoints=true: comparing datasets labelled by %d different MACs (%s); "
                "their divergences include the classifiers' difference", len(found.by_checkpoint), found.describe())
    return found


def dropped_attributes(datasets: list[DatasetInput], attributes: list[str]) -> dict[str, list[str]]:
    """Attribute → the inputs that lack it, for every attribute some input has that is not analysed because another
    lacks it (logged, one line naming all of them)."""
    seen = list(dict.fromkeys(a for d in datasets for a in d.attributes))
    dropped = {a: [d.name for d in datasets if a not in d.attributes] for a in seen if a not in attributes}
    dropped = {a: names for a, names in dropped.items() if names}
    if dropped:
        log.warning("%d attribute(s) left out because an input lacks them: %s", len(dropped), describe_dropped(dropped))
    return dropped


def describe_dropped(dropped: dict[str, list[str]]) -> str:
    """'not in synth_b: Bald, Bangs; not in real_a, real_b: Young' (attributes grouped by the inputs lacking them)."""
    by_lacking: dict[tuple[str, ...], list[str]] = {}
    for attribute, names in dropped.items():
        by_lacking.setdefault(tuple(names), []).append(attribute)
    return "; ".join(f"not in {', '.join(names)}: {', '.join(attrs)}" for names, attrs in by_lacking.items())
