"""Which thresholds turn a MAC's probabilities into labels (``probability > threshold``): one place for the checkpoint,
the annotation manifest, the annotation accuracy check and the analysis.

A checkpoint carries two sets per attribute: ``thresholds``, tuned for the MAC's reporting metric (balanced accuracy,
mA), and ``counting_thresholds``, chosen so that counts of positives stay faithful (``train.counting_rule``). An
annotation manifest records both, the counting rule, and under ``label_thresholds`` the key of the set its labels use
(the counting set when the checkpoint has one). Manifests and checkpoints from before the counting set have only
``thresholds``: their labels use it, and they stay readable.
"""

from __future__ import annotations

from typing import Any

from facemac.errors import CheckpointError, DataError

RULE = "probability > threshold"
REPORTING = "thresholds"
COUNTING = "counting_thresholds"
# analyze.label_rule / evaluate --label-rule -> manifest key of the threshold set
LABEL_RULES = {"counting": COUNTING, "reporting": REPORTING}


def checkpoint_sets(ckpt: dict[str, Any],
                    path: Any = "checkpoint") -> tuple[list[float], list[float] | None, str | None]:
    """(reporting thresholds, counting thresholds or None for an older checkpoint, counting rule) of a checkpoint."""
    n = len(ckpt["attributes"])
    reporting = [float(t) for t in ckpt["thresholds"]]
    counting = ckpt.get(COUNTING)
    if len(reporting) != n:
        raise CheckpointError(f"checkpoint {path}: {len(reporting)} thresholds for {n} attributes")
    if counting is not None:
        counting = [float(t) for t in counting]
        if len(counting) != n:
            raise CheckpointError(f"checkpoint {path}: {len(counting)} counting_thresholds for {n} attributes")
    return reporting, counting, ckpt.get("counting_rule") if counting is not None else None


def manifest_fields(attributes: list[str], counting: list[float] | None, counting_rule: str | None) -> dict[str, Any]:
    """Manifest entries beside ``thresholds`` (the reporting set): the counting set, its rule, and which set the labels
    use."""
    fields: dict[str, Any] = {"label_rule": RULE, "label_thresholds": COUNTING if counting is not None else REPORTING}
    if counting is not None:
        fields[COUNTING] = {a: float(t) for a, t in zip(attributes, counting)}
        fields["counting_rule"] = counting_rule
    return fields


def _threshold_set(manifest: dict[str, Any], key: str, where: Any) -> dict[str, float]:
    values = manifest.get(key)
    attributes = list(manifest["attributes"])
    if not isinstance(values, dict) or set(values) != set(attributes):
        raise DataError(f"{where}: {key!r} must give one threshold per attribute in 'attributes'")
    try:
        return {a: float(values[a]) for a in attributes}
    except (TypeError, ValueError):
        raise DataError(f"{where}: {key!r} holds a value that is not a number") from None


def label_thresholds(manifest: dict[str, Any], rule: str | None = None,
                     where: Any = "manifest.json") -> tuple[dict[str, float], str]:
    """({attribute: threshold}, key of the set used) for ``rule`` (``counting`` | ``reporting``; None = the set the
    manifest's labels use). ``counting`` on a manifest without a counting set falls back to ``thresholds``."""
    if rule is not None and rule not in LABEL_RULES:
        raise ValueError(f"label rule {rule!r} is unknown; choose one of {', '.join(LABEL_RULES)}")
    key = LABEL_RULES[rule] if rule is not None else str(manifest.get("label_thresholds", REPORTING))
    if key not in (REPORTING, COUNTING):
        raise DataError(f"{where}: label_thresholds={key!r}; expected {REPORTING!r} or {COUNTING!r}")
    if key == COUNTING and COUNTING not in manifest:
        key = REPORTING  # annotated with a checkpoint from before counting thresholds
    return _threshold_set(manifest, key, where), key
