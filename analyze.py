"""Compare attribute distributions of annotated datasets: python analyze.py [annotations=<folder>|latest] [inputs=[...]]"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="analyze")
def main(cfg: DictConfig) -> None:
    from facemac.analysis.run import run
    from facemac.stage import report_errors

    with report_errors():
        run(cfg)


if __name__ == "__main__":
    main()
