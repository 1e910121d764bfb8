"""``paths.*`` (conf/paths/default.yaml): where runs and shared caches live."""

from __future__ import annotations

from facemac.settings.base import Section


class PathsSettings(Section):
    """Every run folder goes under ``log_dir``; ``cache_dir`` holds the demo faces and decoded caches."""

    log_dir: str = "outputs"
    cache_dir: str = "~/.cache/facemac"
    output_dir: str = "."  # this run's folder (Hydra's runtime.output_dir)
