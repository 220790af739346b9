"""keras_kd.callbacks."""
