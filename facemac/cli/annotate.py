"""python -m facemac.cli.annotate [ckpt=<path>|latest|<W&B ref>] [targets=<set>] — annotate face datasets with a MAC
(docs/annotate.md); ``python annotate.py``."""

from __future__ import annotations

import sys
from typing import Any

from facemac.cli import hydra_entry


@hydra_entry("annotate")
def annotate_stage(cfg) -> None:
    from facemac.annotation.run import annotate

    annotate(cfg)


def main(cfg: Any = None) -> Any:
    """The entry point; ``targets=null`` is refused in one line first (Hydra raises a bare ValueError on it while
    composing, before any facemac code runs)."""
    if cfg is None:
        from facemac.annotation.targets import refuse_unset_group
        from facemac.stage import report_errors

        with report_errors():
            refuse_unset_group(sys.argv[1:])
    return annotate_stage(cfg)


if __name__ == "__main__":
    main()
