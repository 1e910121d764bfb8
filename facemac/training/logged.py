"""The names the train stage logs to its tracker (W&B). training/run.py and training/metrics.flat_history log under
these, and the dashboard's panels import them from here, so a renamed metric is renamed in both."""

from __future__ import annotations

EPOCH = "epoch"
LR = "lr"
TRAIN_LOSS = "train/loss"
THROUGHPUT = "train/images_per_s"
BEST_EPOCH = "best_epoch"
TEST_TABLE = "test/per_attribute"  # per-attribute test metrics (the same rows as test_metrics.csv)


def metric_key(split: str, *parts: str) -> str:
    """``val/mA``, ``val/Smiling/balanced_accuracy``: a split's summary metric, or one attribute's."""
    return "/".join((split, *parts))


VAL_MA, VAL_ACC = metric_key("val", "mA"), metric_key("val", "mean_accuracy")
TEST_MA, TEST_ACC = metric_key("test", "mA"), metric_key("test", "mean_accuracy")
PER_ATTRIBUTE_BACC = metric_key("val", ".*", "balanced_accuracy")  # a regex: one history key per attribute
