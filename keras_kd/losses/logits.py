"""Logit distillation losses: thin `keras.losses.Loss` classes around `functional.py`.

Convention (Keras' `call(y_true, y_pred)`): **`y_true` is the teacher's output, `y_pred` the
student's**, both logits. Keras' `Loss.__call__` applies `reduction`, `sample_weight` and the
`tf.distribute` scaling (so a custom `train_step` under `MirroredStrategy` gets global-batch losses).
"""

import numbers

import keras

from keras_kd.losses import functional
from keras_kd.losses.registry import register


def check_temperature(temperature, name="temperature"):
    """Validate a temperature given as a number; variables (schedules) are checked when assigned."""
    if isinstance(temperature, numbers.Number) and not temperature > 0:
        raise ValueError(f"`{name}` must be > 0. Received: {name}={temperature}")
    return temperature


def config_float(value):
    """A Python float from a number or a (scheduled) `keras.Variable`, for `get_config`."""
    if isinstance(value, numbers.Number):
        return float(value)
    return float(keras.ops.convert_to_numpy(value))


class TemperatureLoss(keras.losses.Loss):
    """Base class for losses with a softmax temperature `T`.

    `temperature` may be a float or a `keras.Variable`; `Distiller` swaps a float for a variable it
    owns so that `TemperatureScheduler` can change it without retracing a compiled step.
    """

    def __init__(self, temperature=4.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = check_temperature(temperature)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = config_float(self.temperature)
        return config


@register("kl", "kl_divergence", "hinton")
class KLDivergence(TemperatureLoss):
    """Temperature-scaled KL divergence, Hinton et al. 2015 (the classic KD loss).

    `loss = T² · mean_batch KL(softmax(t/T) ‖ softmax(s/T))`, computed with `log_softmax` in float32.

    Args:
        temperature: softmax temperature `T > 0` (default 4.0).
        reduction, name, dtype: as in `keras.losses.Loss`.

    Example:
    >>> KLDivergence(temperature=2.0)([[3., 1., -2.]], [[-1., 2., .5]])  # 3.3526
    """

    def __init__(self, temperature=4.0, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        return functional.kl_divergence(y_true, y_pred, self.temperature)


@register("soft_ce", "soft_target_cross_entropy")
class SoftTargetCrossEntropy(TemperatureLoss):
    """Soft-target cross-entropy, Hinton et al. 2015.

    `loss = -T² · mean_batch Σ softmax(t/T) · log_softmax(s/T)`: KL plus the teacher's entropy (a
    constant for the student), the form used in many papers and in TextBrewer's `kd_ce_loss`.
    """

    def __init__(
        self, temperature=4.0, reduction="sum_over_batch_size", name="soft_target_cross_entropy", dtype=None
    ):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        return functional.soft_target_cross_entropy(y_true, y_pred, self.temperature)
