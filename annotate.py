"""Annotate face datasets with a trained MAC: python annotate.py [ckpt=<path>|latest|<W&B ref>] [targets=<set>]."""

from facemac.cli.annotate import main

if __name__ == "__main__":
    import sys

    from facemac.annotation.targets import refuse_unset_group
    from facemac.stage import report_errors

    with report_errors():  # Hydra fails on `targets=null` before main() with a bare traceback
        refuse_unset_group(sys.argv[1:])
    main()
