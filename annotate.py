"""Annotate face datasets with a trained MAC: python annotate.py [ckpt=<path>|latest|<W&B ref>] [targets=<set>]."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="annotate")
def main(cfg: DictConfig) -> None:
    from facemac.annotation.run import annotate
    from facemac.stage import report_errors

    with report_errors():
        annotate(cfg)


if __name__ == "__main__":
    main()
