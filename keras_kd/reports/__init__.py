"""Reports: evaluation figures (`metrics`), size and latency (`measure`, the one place they are
measured) and PNG plots (`plots`, needs matplotlib)."""

from keras_kd.reports import measure, metrics
from keras_kd.reports.measure import keras_latency, weights_size
from keras_kd.reports.metrics import (
    accuracy,
    agreement,
    classification_report,
    comparison_table,
    confusion_matrix,
    count_params,
    expected_calibration_error,
    latency_per_example,
    precision_recall_f1,
    size_on_disk,
)

__all__ = [
    "measure",
    "metrics",
    "keras_latency",
    "weights_size",
    "accuracy",
    "agreement",
    "classification_report",
    "comparison_table",
    "confusion_matrix",
    "count_params",
    "expected_calibration_error",
    "latency_per_example",
    "precision_recall_f1",
    "size_on_disk",
]
