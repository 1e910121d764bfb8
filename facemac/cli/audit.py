"""python -m facemac.audit annotations=<folder>|latest audit.size=<N> [audit.datasets=[...]] — draw an audit sample
per annotated dataset and write its template and labelling page (docs/audit.md)."""

from facemac.cli import hydra_entry


@hydra_entry("audit")
def main(cfg) -> None:
    from facemac.audit.run import audit

    audit(cfg)


if __name__ == "__main__":
    main()
