"""keras_kd.callbacks: TensorBoard logging of distillation scalars, temperature/alpha schedules."""

from keras_kd.callbacks.guards import NonFiniteLossGuard
from keras_kd.callbacks.schedules import AlphaScheduler, TemperatureScheduler
from keras_kd.callbacks.tensorboard import DistillationTensorBoard

__all__ = ["AlphaScheduler", "DistillationTensorBoard", "NonFiniteLossGuard", "TemperatureScheduler"]
