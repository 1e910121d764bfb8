"""python -m facemac.cli.train [dataset=…] [model=…] [key=value …] — train a MAC (docs/train.md); ``python train.py``."""

from facemac.cli import hydra_entry


@hydra_entry("train")
def main(cfg) -> float:
    """Returns the best validation mA, so a Hydra sweeper can optimise it."""
    from facemac.training.run import train

    return train(cfg)["val_mA"]


if __name__ == "__main__":
    main()
