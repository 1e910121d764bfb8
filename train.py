"""python train.py [dataset=…] [model=…] [key=value …] — train a MAC (see docs/train.md)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Returns the best validation mA, so a Hydra sweeper can optimise it."""
    from facemac.stage import report_errors
    from facemac.training.run import train

    with report_errors():
        return train(cfg)["val_mA"]


if __name__ == "__main__":
    main()
