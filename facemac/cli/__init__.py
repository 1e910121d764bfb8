"""Hydra entry points inside the package, composed from the installed config tree (facemac.conf_dir), so they run from
any folder: ``python -m facemac.cli.train|annotate|analyze`` (what the pipeline starts; the repository's
``train.py``/``annotate.py``/``analyze.py`` call the same functions), ``python -m facemac.compare``,
``python -m facemac.dashboard``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from facemac.conf_dir import conf_dir


def hydra_entry(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """Turn ``run(cfg)`` into a ``@hydra.main`` entry on ``conf/<config_name>.yaml``: an override that needs a missing
    extra is refused before composing, Hydra's composition errors and a FacemacError end in one ``error:`` line (exit 2,
    facemac/cli/errors.py). Hydra names the job
    after ``run``'s module (``facemac.cli.train`` → ``train``, hence ``<run>/train.log``)."""

    def wrap(run: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        @functools.wraps(run)
        def task(cfg: DictConfig) -> Any:
            from facemac.stage import report_errors

            with report_errors():
                return run(cfg)

        composed = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=config_name)(task)

        @functools.wraps(run)
        def main(cfg: DictConfig | None = None) -> Any:
            if cfg is None:
                from facemac.cli.errors import hydra_errors
                from facemac.extras import check_overrides
                from facemac.stage import report_errors

                with report_errors():
                    check_overrides(sys.argv[1:])
                with hydra_errors(config_name):  # a bad override or option: one error line, exit 2
                    return composed(cfg)
            return composed(cfg)

        return main

    return wrap
