"""The base of every settings section: unknown keys refused, values frozen, dumps that are plain YAML-able values.

Why pydantic (v2) over Hydra structured configs: the schemas must also hold values a run *decides* (``auto`` workers,
the starting weights' source, the probe's split) and say what is wrong in one line naming the key and the closest
valid one; pydantic gives typed, frozen objects with per-field validators, precise error locations and a JSON schema,
while a structured config stays an OmegaConf node (mutable by open_dict, merge-time errors worded by OmegaConf, no
validators). Hydra still composes the YAML; the settings object is built once from that composition (docs/config.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_serializer


class Section(BaseModel):
    """A config section: extra keys are errors, instances are frozen (a decision makes a new object: ``replace``).

    Read-only Mapping helpers (``get``, ``[]``, ``in``, ``keys``) keep code written against a DictConfig working when
    handed a section; ``get(k, d)`` returns ``d`` for a field the config did not set, as DictConfig did for a missing
    key."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=False)
    # fields no conf/ file sets, each for a reason (a decision the run records, a reader option without a default);
    # every other field has its default in conf/ (tests/test_settings.py checks both ways)
    unlisted: ClassVar[frozenset[str]] = frozenset()

    def get(self, key: str, default: Any = None) -> Any:
        name = self._field_name(key)
        if name is None or (name not in self.model_fields_set and getattr(self, name) is None):
            return default
        return getattr(self, name)

    def __getitem__(self, key: str) -> Any:
        name = self._field_name(key)
        if name is None:
            raise KeyError(key)
        return getattr(self, name)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._field_name(key) is not None

    def keys(self) -> list[str]:
        return [f.alias or n for n, f in type(self).model_fields.items()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]

    @classmethod
    def _field_name(cls, key: str) -> str | None:
        if key in cls.model_fields:
            return key
        for name, f in cls.model_fields.items():
            if f.alias == key:
                return name
        return None

    def plain(self) -> dict[str, Any]:
        """The section as plain values (aliases as keys, e.g. ``_target_``), ready for YAML, W&B or a reader."""
        return self.model_dump(by_alias=True, mode="json")


class Entry(Section):
    """A section whose keys depend on what it describes (a dataset's format): only the keys the config set are
    dumped, so a reader's ``cfg.get(key, default)`` sees exactly what the YAML said."""

    @model_serializer(mode="wrap")
    def _only_set(self, handler: Any) -> Any:
        data = handler(self)
        keep = {type(self).model_fields[n].alias or n for n in self.model_fields_set}
        return {k: v for k, v in data.items() if k in keep}


def replace(section: Section, dotted: str, value: Any) -> Section:
    """A copy of ``section`` with the field at ``dotted`` (``"data.num_workers"``) set: how decisions are recorded
    without mutating the object the run started with (every level is copied, none changed)."""
    head, _, rest = dotted.partition(".")
    name = section._field_name(head)
    if name is None:
        raise KeyError(f"{dotted}: no such field in {type(section).__name__}")
    if rest:
        child = getattr(section, name)
        if isinstance(child, Section):
            value = replace(child, rest, value)
        elif isinstance(child, Mapping):
            key, _, deeper = rest.partition(".")
            inner = child[key]
            value = {**child, key: replace(inner, deeper, value) if deeper else value}
        else:
            raise KeyError(f"{dotted}: {head} is not a section")
    return section.model_copy(update={name: value})


def to_plain(value: Any) -> Any:
    """Sections (and dicts/lists of them) → plain values."""
    if isinstance(value, Section):
        return value.plain()
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
