"""python -m facemac.cli.annotate [ckpt=<path>|latest|<W&B ref>] [targets=<set>] — annotate face datasets with a MAC
(docs/annotate.md); ``python annotate.py``."""

from facemac.cli import hydra_entry


@hydra_entry("annotate")
def main(cfg) -> None:
    from facemac.annotation.run import annotate

    annotate(cfg)


if __name__ == "__main__":
    main()
