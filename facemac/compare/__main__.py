"""python -m facemac.compare runs=[<run folder>,<glob>,...] | latest=N [stage=train|annotate|analyze]"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../../conf", config_name="compare")
def main(cfg: DictConfig) -> None:
    from facemac.compare.run import run

    run(cfg)


if __name__ == "__main__":
    main()
