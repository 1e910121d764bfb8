"""The names the annotate stage logs to its tracker (W&B): annotation/run.py logs under these and the dashboard's
panels import them from here (the artifacts' names are in facemac/lineage.py)."""

from __future__ import annotations

SUMMARY_TABLE = "annotation_summary"  # one row per annotated dataset (annotation_summary.csv)


def dataset_keys(dataset: str) -> tuple[str, str]:
    """The per-dataset summary values: images annotated, images that failed."""
    return f"{dataset}/images", f"{dataset}/failures"

FACES_TABLE = "annotated_faces"  # sampled faces: image, dataset, group, path, identity, one probability per attribute
