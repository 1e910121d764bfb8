"""``optim.*`` and ``sched.*`` (conf/optim/, conf/sched/): partial callables Hydra instantiates.

Their keys are the callable's own arguments, so an unknown key is checked against its signature (one line naming
the closest argument) when the settings are built, not when the optimiser is first made after the data work."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from facemac.settings.base import Section


def _signature_keys(target: str) -> list[str] | None:
    """The keyword arguments ``target`` takes, or None when it takes **kwargs or cannot be imported here."""
    module, _, name = target.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name)
        params = inspect.signature(fn).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


class CallableSettings(Section):
    """``_target_`` + ``_partial_`` + the callable's keyword arguments (extra keys allowed, checked by signature)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    kind: ClassVar[str] = "optim"

    target: str = Field(alias="_target_")
    partial: bool = Field(True, alias="_partial_")

    @model_validator(mode="after")
    def _known_arguments(self) -> "CallableSettings":
        valid = _signature_keys(self.target)
        if valid is not None:
            for key in self.model_extra or {}:
                if key not in valid:
                    from facemac.settings.errors import unknown_key
                    raise ValueError(unknown_key(f"{self.kind}.{key}", [f"{self.kind}.{v}" for v in valid],
                                                 f"(arguments of {self.target})"))
        return self

    def keys(self) -> list[str]:
        return [*super().keys(), *(self.model_extra or {})]

    def get(self, key: str, default: Any = None) -> Any:
        extra = self.model_extra or {}
        return extra[key] if key in extra else super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        extra = self.model_extra or {}
        return extra[key] if key in extra else super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        return key in (self.model_extra or {}) or super().__contains__(key)


class OptimSettings(CallableSettings):
    """Called as ``optim(param_groups)``; ``lr`` and ``weight_decay`` are read by layer decay too."""

    kind: ClassVar[str] = "optim"
    lr: float = Field(3e-3, ge=0)  # 0: a frozen run (tests that the saved weights are the starting ones)
    weight_decay: float = Field(0.0, ge=0)


class SchedSettings(CallableSettings):
    """Called as ``sched(optimizer, total_steps=...)``."""

    kind: ClassVar[str] = "sched"

