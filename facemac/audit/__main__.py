"""python -m facemac.audit annotations=<folder>|latest audit.size=<N> (facemac.cli.audit)."""

from facemac.cli.audit import main

if __name__ == "__main__":
    main()
