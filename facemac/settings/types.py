"""Value types the schemas share: ``auto`` or a number, counts, shares; each fails with one plain sentence."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import PlainValidator, WithJsonSchema


def _auto_or_int(minimum: int, allow_none: bool = False):
    def check(value: Any) -> Any:
        if value is None and allow_none:
            return None
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "auto":
                return "auto"
            if text.lstrip("-").isdigit():
                value = int(text)
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        raise ValueError(f"expected auto{', null' if allow_none else ''} or an integer >= {minimum}")
    return check


def _auto_or_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("auto", "true", "false"):
        v = value.strip().lower()
        return "auto" if v == "auto" else v == "true"
    raise ValueError("expected auto, true or false")


_INT_OR_AUTO = {"anyOf": [{"type": "integer"}, {"const": "auto"}]}

AutoCount = Annotated[Union[int, str], PlainValidator(_auto_or_int(0)), WithJsonSchema(_INT_OR_AUTO)]
"""``auto`` or a count >= 0 (DataLoader workers)."""
AutoPositive = Annotated[Union[int, str], PlainValidator(_auto_or_int(1)), WithJsonSchema(_INT_OR_AUTO)]
"""``auto`` or a count >= 1 (inference threads)."""
AutoThreads = Annotated[Union[int, str, None], PlainValidator(_auto_or_int(1, allow_none=True)),
                        WithJsonSchema({"anyOf": [{"type": "integer"}, {"const": "auto"}, {"type": "null"}]})]
"""``auto``, a count >= 1, or null (torch's default threads)."""
AutoBool = Annotated[Union[bool, str], PlainValidator(_auto_or_bool),
                     WithJsonSchema({"anyOf": [{"type": "boolean"}, {"const": "auto"}]})]
"""``auto``, true or false."""

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""The one precision vocabulary of train.precision and annotate.precision."""
