"""keras_kd.export."""
