"""python -m facemac.cli.analyze [annotations=<folder>|latest] [inputs=[...]] — compare attribute distributions of
annotated datasets (docs/analyze.md); ``python analyze.py``."""

from facemac.cli import hydra_entry


@hydra_entry("analyze")
def main(cfg) -> None:
    from facemac.analysis.run import run

    run(cfg)


if __name__ == "__main__":
    main()
