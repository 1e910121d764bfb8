"""Runs side by side without W&B: ``python -m facemac.compare runs=[...] | latest=N`` (conf/compare.yaml).

Reads only what every stage writes into its run folder (``config.yaml``, the record, or ``.hydra/config.yaml`` for
older runs; ``metrics.json``, ``annotation_summary.csv``, ``kl_pairs.csv``, ``kl_attributes.csv``) and writes ``comparison.md``,
``comparison.csv`` and figures into its own run folder, so offline and cluster runs compare before any sync.
"""
