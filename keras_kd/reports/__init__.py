"""keras_kd.reports."""
