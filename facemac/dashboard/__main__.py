"""python -m facemac.dashboard [group=<W&B group>] [experiment=<name>] [dashboard.dry_run=true] [publish=<folder>]"""

from facemac.cli import hydra_entry


@hydra_entry("dashboard")
def main(cfg) -> None:
    from facemac.dashboard.run import run

    run(cfg)


if __name__ == "__main__":
    main()
