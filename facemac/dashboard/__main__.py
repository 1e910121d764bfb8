"""python -m facemac.dashboard [group=<W&B group>] [experiment=<name>] [dashboard.dry_run=true] [publish=<folder>]"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../../conf", config_name="dashboard")
def main(cfg: DictConfig) -> None:
    from facemac.dashboard.run import run

    run(cfg)


if __name__ == "__main__":
    main()
