"""Reports: evaluation figures (`metrics`) and PNG plots (`plots`, needs matplotlib)."""

from keras_kd.reports import metrics
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
    "metrics",
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
