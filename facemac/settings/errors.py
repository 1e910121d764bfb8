"""Validation errors as one line naming the key: ``unknown key 'train.epoch' (did you mean 'train.epochs'?)``."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from facemac.errors import ConfigError


# keys that were renamed: the new name, said instead of a guess
RENAMED = {"annotate.amp": "annotate.precision (auto, fp32, bf16, fp16; the old off is fp32)"}

_RANGES = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_BOUND = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}


def unknown_key(key: str, valid: list[str], where: str = "") -> str:
    """The sentence for a key no schema has, with the closest valid one (or the valid ones when none is close)."""
    if key in RENAMED:
        return f"unknown key {key!r}: it is now {RENAMED[key]}"
    leaf = key.rsplit(".", 1)[-1]
    parent = key.rpartition(".")[0]
    leaves = [v.rsplit(".", 1)[-1] for v in valid]
    close = difflib.get_close_matches(leaf, leaves, n=1, cutoff=0.6)
    if not close:  # a typo in the section name: compare the whole key
        close_full = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        close = [close_full[0].rsplit(".", 1)[-1]] if close_full else []
        if close_full:
            return f"unknown key {key!r} (did you mean {close_full[0]!r}?)"
    if close:
        return f"unknown key {key!r} (did you mean {(parent + '.' if parent else '') + close[0]!r}?)"
    shown = ", ".join(valid[:40]) + (", ..." if len(valid) > 40 else "")
    return f"unknown key {key!r}{' ' + where if where else ''}; valid keys: {shown}"


def _unwrap(annotation: Any) -> list[Any]:
    """The classes inside Optional[...], Annotated[...], dict[str, X] (X returned for dicts)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [c for a in typing.get_args(annotation) for c in _unwrap(a)]
    if origin is dict:
        return [("dict", c) for c in _unwrap(typing.get_args(annotation)[1])]
    return [annotation]


def model_at(root: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class of the section at ``path`` (a pydantic error location, without the leaf)."""
    current: Any = root
    i = 0
    while i < len(path):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(path[i]) or next(
            (f for f in current.model_fields.values() if f.alias == path[i]), None)
        if field is None:
            return None
        nxt = None
        for c in _unwrap(field.annotation):
            if isinstance(c, tuple):  # dict[str, Model]: the next location element is the key
                nxt, i = c[1], i + 1
                break
            if isinstance(c, type) and issubclass(c, BaseModel):
                nxt = c
                break
        current, i = nxt, i + 1
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _dotted(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] if prefix else []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        elif "[" in str(p) or str(p) in ("int", "str", "float", "bool", "none"):
            break  # a union member's tag, not a key
        else:
            parts.append(str(p))
    return ".".join(parts)


def _keys_of(model: type[BaseModel], prefix: str) -> list[str]:
    return [f"{prefix}.{f.alias or n}" if prefix else (f.alias or n) for n, f in model.model_fields.items()]


def config_error(exc: ValidationError, schema: type[BaseModel], prefix: str = "",
                 values: dict[str, Any] | None = None) -> ConfigError:
    """The first error of ``exc`` as a ConfigError naming its key (unknown keys: the closest valid one)."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    key = _dotted(prefix, loc)
    if err["type"] == "extra_forbidden":
        parent = model_at(schema, loc[:-1])
        parent_key = key.rpartition(".")[0]
        valid = _keys_of(parent, parent_key) if parent is not None else []
        return ConfigError(unknown_key(key, valid))
    msg = err["msg"]
    if err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
        if msg.startswith("unknown key"):
            return ConfigError(msg)
    elif err["type"] == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
        msg = f"choose one of {expected}"
    elif err["type"] in _RANGES:
        msg = f"must be {_RANGES[err['type']]} {err.get('ctx', {}).get(_BOUND[err['type']])}"
    elif err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        msg = "expected a mapping of keys to values"
        if key.startswith("targets.") and key.count(".") == 1:
            msg = (f"not a dataset entry: give it {{format, root, group}} ('+{key}={{format: folders, root: /path, "
                   f"group: synthetic}}') or a file with +targets/dataset@{key}=<file>")
    elif err["type"] == "string_pattern_mismatch" and key.endswith("device"):
        msg = "choose auto, cpu, cuda or cuda:N"
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f"={value!r}"
    sep = ";" if err["type"] == "literal_error" else ":"
    return ConfigError(f"{key}{shown}{sep} {msg[0].lower() + msg[1:] if msg else 'invalid'}")
