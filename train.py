"""python train.py [dataset=…] [model=…] [key=value …] — train a MAC (see docs/train.md); facemac/cli/train.py."""

from facemac.cli.train import main

if __name__ == "__main__":
    main()
