"""Temperature and alpha: the one validation, and variables that validate every assignment.

`check_temperature` and `check_alpha` accept Python numbers, NumPy scalars, scalar tensors and
`keras.Variable`s, and return a Python float, or raise a Keras-style `ValueError` naming the
argument: `` `alpha` must be in [0, 1]. Received: alpha=1.5 ``. They run wherever a value can be
set: the losses' and the Distiller's constructors, `CheckedVariable.assign` (so
`distiller.temperature.assign(0)` raises), the schedules, and the CLI config.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf


def _as_float(value, name, requirement):
    """`value` as a Python float, or a ValueError naming `name`."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        raise ValueError(
            f"`{name}` must be a number {requirement}. Received: {name}={value!r} of type {type(value).__name__}"
        )
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        array = keras.ops.convert_to_numpy(value)
    except Exception:  # noqa: BLE001 - anything that is not a number gets the same message
        array = None
    if array is None or np.size(array) != 1 or not np.issubdtype(np.asarray(array).dtype, np.number):
        raise ValueError(
            f"`{name}` must be a number {requirement} (a Python number, a scalar tensor or a "
            f"keras.Variable). Received: {name}={value!r} of type {type(value).__name__}"
        )
    return float(np.asarray(array).reshape(()))


def check_temperature(value, name="temperature"):
    """A finite temperature > 0 as a float; a `ValueError` naming `name` otherwise."""
    number = _as_float(value, name, "> 0")
    shown = value if isinstance(value, numbers.Real) else number
    if not math.isfinite(number):
        raise ValueError(f"`{name}` must be finite and > 0. Received: {name}={shown}")
    if not number > 0:
        raise ValueError(f"`{name}` must be > 0. Received: {name}={shown}")
    return number


def check_alpha(value, name="alpha"):
    """A finite weight in [0, 1] as a float; a `ValueError` naming `name` otherwise."""
    number = _as_float(value, name, "in [0, 1]")
    shown = value if isinstance(value, numbers.Real) else number
    if not math.isfinite(number):
        raise ValueError(f"`{name}` must be a finite number in [0, 1]. Received: {name}={shown}")
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]. Received: {name}={shown}")
    return number


CHECKS = {"temperature": check_temperature, "alpha": check_alpha}


class CheckedVariable(keras.Variable):
    """A non-trainable float32 scalar `keras.Variable` whose `assign` validates the value.

    `name` selects the check (`"temperature"` or `"alpha"`). Values assigned eagerly (callbacks,
    user code, loading weights) are checked before the variable changes; inside a compiled function
    the check runs in the graph (`tf.debugging`), so a bad value stops the step.
    """

    def __init__(self, value, name):
        if name not in CHECKS:
            raise ValueError(f"`name` must be one of {sorted(CHECKS)}. Received: name={name!r}")
        self.kd_check = CHECKS[name]
        super().__init__(
            initializer=self.kd_check(value, name), shape=(), dtype="float32", trainable=False, name=name
        )

    def kd_validate(self, value):
        if tf.executing_eagerly() or not tf.is_tensor(value):
            return self.kd_check(value, self.name)
        value = tf.cast(value, "float32")
        low = 0.0 if self.name == "alpha" else np.finfo(np.float32).tiny
        high = 1.0 if self.name == "alpha" else np.finfo(np.float32).max
        message = f"`{self.name}` out of range (see keras_kd.losses.hyperparameters.check_{self.name})"
        with tf.control_dependencies(
            [
                tf.debugging.assert_greater_equal(value, low, message=message),
                tf.debugging.assert_less_equal(value, high, message=message),
            ]
        ):
            return tf.identity(value)

    def assign(self, value):
        return super().assign(self.kd_validate(value))

    def assign_add(self, value):
        if tf.executing_eagerly():
            self.kd_validate(float(keras.ops.convert_to_numpy(self.value)) + _as_float(value, self.name, ""))
        return super().assign_add(value)

    def assign_sub(self, value):
        if tf.executing_eagerly():
            self.kd_validate(float(keras.ops.convert_to_numpy(self.value)) - _as_float(value, self.name, ""))
        return super().assign_sub(value)
