"""Annotate face datasets with a trained MAC: python annotate.py [ckpt=<path>|latest|<W&B ref>] [targets=<set>]."""

from facemac.cli.annotate import main

if __name__ == "__main__":
    main()
