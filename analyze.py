"""Compare attribute distributions of annotated datasets: python analyze.py [annotations=<folder>|latest] [inputs=[...]]"""

from facemac.cli.analyze import main

if __name__ == "__main__":
    main()
