"""python -m facemac.compare runs=[<run folder>,<glob>,...] | latest=N [stage=train|annotate|analyze]"""

from facemac.cli import hydra_entry


@hydra_entry("compare")
def main(cfg) -> None:
    from facemac.compare.run import run

    run(cfg)


if __name__ == "__main__":
    main()
