"""keras-kd: knowledge distillation for TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"

from keras_kd import callbacks, data, distribute, export, losses, reports, teachers  # noqa: E402
from keras_kd.distiller import Distiller  # noqa: E402
from keras_kd.losses.keras_distillation import FeatureDistillation, LogitsDistillation  # noqa: E402

__all__ = ["Distiller", "FeatureDistillation", "LogitsDistillation", "callbacks", "data", "distribute", "export", "losses", "reports", "teachers", "__version__"]
