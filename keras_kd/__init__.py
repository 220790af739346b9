"""keras-kd: knowledge distillation for TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"

from keras_kd import data, export, losses, teachers  # noqa: E402
from keras_kd.distiller import Distiller  # noqa: E402

__all__ = ["Distiller", "data", "export", "losses", "teachers", "__version__"]
