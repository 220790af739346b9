"""keras-kd: knowledge distillation for TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"

# `models` registers the built-in layers (e.g. the n-gram bag's), so `import keras_kd` is enough to load
# a saved student with `keras.saving.load_model`.
from keras_kd import callbacks, data, distribute, export, losses, models, reports, teachers  # noqa: E402
from keras_kd.distiller import Distiller  # noqa: E402
from keras_kd.losses.keras_distillation import FeatureDistillation, LogitsDistillation  # noqa: E402

__all__ = ["Distiller", "FeatureDistillation", "LogitsDistillation", "callbacks", "data", "distribute", "export", "losses", "models", "reports", "teachers", "__version__"]
