"""python pipeline.py experiment=demo [overrides] — train → annotate → analyze in one experiment folder."""

from facemac.pipeline import main

if __name__ == "__main__":
    main()
