"""One exit-code convention for every facemac command: 0 done, 1 a check that failed (``evaluate --min``) or a bug
(its traceback), 2 a user error the one ``error: …`` line explains — Hydra's composition errors included.

Hydra reports a bad override, a missing group option or an unknown key itself (several lines, exit 1, and for
``train.epoch=3`` the advice ``+train.epoch=3``, which used to run the default epochs silently). ``hydra_errors``
routes those through the same one-line form: an unknown key names the closest valid one from the schemas
(facemac/settings/), a missing option lists the options there are. Everything else keeps Hydra's report.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, Callable

GRAMMAR = "https://hydra.cc/docs/1.2/advanced/override_grammar/basic"


def _raise(ex: BaseException) -> Any:
    raise ex


def composition_message(ex: BaseException, command: str) -> str | None:
    """The one-line message for a Hydra composition error, or None when ``ex`` is not one."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    text = str(ex)
    if isinstance(ex, OverrideParseException):
        override = getattr(ex, "override", None)
        first = next((line.strip() for line in text.splitlines() if line.strip()), text)
        head = f"cannot parse the override {override!r}: " if override else "cannot parse an override: "
        return f"{head}{first.removeprefix('Error parsing override ').strip()} (override grammar: {GRAMMAR})"
    if isinstance(ex, MissingConfigException):
        lines = text.splitlines()
        what = lines[0].strip() if lines else text
        options = [ln.strip() for ln in lines if ln.startswith("\t") and "provider=" not in ln]
        if options:
            return f"{what.rstrip('.')}; the options are {', '.join(options)}"
        return what.split(" Config search path")[0]
    if isinstance(ex, ConfigCompositionException):
        cause = f"{ex.__cause__}" if ex.__cause__ is not None else ""
        m = re.search(r"Could not override '([^']+)'", text)
        if m and ("not in struct" in cause or "not in struct" in text):
            return _unknown(m.group(1), command)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("To append")]
        return "; ".join(lines[:3]) + (f" ({cause.splitlines()[0]})" if cause else "")
    return None


def _unknown(key: str, command: str) -> str:
    """``unknown key …`` for the first level of ``key`` that the command's schema does not have."""
    from facemac.settings import SCHEMAS
    from facemac.settings.errors import model_at, unknown_key

    schema = SCHEMAS.get(command)
    if schema is None:
        return f"unknown key {key!r}"
    parts = key.split(".")
    model, depth = schema, 0
    for depth in range(len(parts) - 1):
        deeper = model_at(schema, tuple(parts[:depth + 1]))
        if deeper is None:
            break
        model = deeper
    else:
        depth = len(parts) - 1
        if parts[-1] in model.model_fields:  # a real key the chosen group option does not set (logger=none)
            return (f"{key} is not in this composition (the chosen option of its config group does not set it); "
                    f"add it with +{key}=<value>")
    prefix = ".".join(parts[:depth])
    valid = [f"{prefix}.{f.alias or n}" if prefix else (f.alias or n) for n, f in model.model_fields.items()]
    return unknown_key(".".join(parts[:depth + 1]), valid)


@contextlib.contextmanager
def hydra_errors(command: str) -> Iterator[None]:
    """While Hydra composes ``command``'s config: its composition errors end in one ``error:`` line, exit 2
    (``HYDRA_FULL_ERROR=1`` keeps Hydra's own report). Wraps Hydra's private reporter; without it (another Hydra
    version) Hydra's report stays as it is."""
    import hydra._internal.utils as hydra_utils

    original: Callable[[Callable[[], Any]], Any] | None = getattr(hydra_utils, "run_and_report", None)
    if original is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
        yield
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as ex:  # noqa: BLE001 - only Hydra's composition errors are rewritten
            message = composition_message(ex, command)
            if message is None:
                return original(lambda err=ex: _raise(err))
            from facemac.stage import _log_to_files

            _log_to_files(f"error: {message}")
            print(f"error: {message}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def drop_common_flags(argv: list[str], tool: str) -> list[str]:
    """The flags scripts pass to every facemac command (``logger=none``, ``logger.<key>=…``, ``hydra.run.dir=…``),
    accepted by a tool that neither tracks nor has a Hydra run folder, and removed before its own parser sees them."""
    kept, dropped = [], []
    for arg in argv:
        key = arg.lstrip("+~").partition("=")[0]
        common = key == "logger" or key.startswith(("logger.", "hydra."))
        (dropped if "=" in arg and common else kept).append(arg)
    if dropped:
        import logging

        logging.getLogger(__name__).info("%s: %s ignored (this tool never tracks and has no run folder)", tool,
                                         " ".join(dropped))
    return kept
