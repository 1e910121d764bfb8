"""python -m facemac.dashboard [group=<W&B group>] [experiment=<name>] [dashboard.dry_run=true] [publish=<folder>]"""

from facemac.cli import hydra_entry


@hydra_entry("dashboard")
def main(cfg) -> None:
    from facemac.dashboard.run import run
    from facemac.settings import build_settings

    build_settings(cfg, "dashboard")  # unknown keys, bad values: one line naming the key, before any W&B call
    run(cfg)


if __name__ == "__main__":
    main()
