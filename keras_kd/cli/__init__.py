"""keras_kd.cli."""
