"""The one precision vocabulary of ``train.precision`` and ``annotate.precision``: auto | fp32 | bf16 | fp16."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

# spellings other tools use (Lightning, the old annotate.amp), each refused with the one to write instead
_OLD = {"off": "fp32", "none": "fp32", "false": "fp32", "32": "fp32", "32-true": "fp32", "float32": "fp32",
        "fp32-true": "fp32", "16": "fp16", "16-mixed": "fp16", "float16": "fp16", "half": "fp16",
        "bf16-mixed": "bf16", "bf16-true": "bf16", "bfloat16": "bf16"}


def _check(value: Any) -> Any:
    text = str(value).strip().lower() if value is not None and not isinstance(value, bool) else str(value).lower()
    if text in _OLD:
        raise ValueError(f"{value!r} is not in facemac's precision vocabulary; write {_OLD[text]} "
                         "(one of auto, fp32, bf16, fp16)")
    return value


Precision = Annotated[Literal["auto", "fp32", "bf16", "fp16"], BeforeValidator(_check)]
