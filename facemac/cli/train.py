"""python -m facemac.cli.train [dataset=…] [model=…] [key=value …] — train a MAC (docs/train.md); ``python train.py``."""

from facemac.cli import hydra_entry


@hydra_entry("train")
def main(cfg) -> float:
    """Returns the validation value of the metric selection monitors (``train.early_stopping.monitor``, as
    lightning-hydra-template's ``get_metric_value``), so a Hydra sweeper optimises what picks best.pt."""
    from facemac.training.run import train

    return train(cfg).objective


if __name__ == "__main__":
    main()
