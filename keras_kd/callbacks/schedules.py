"""Temperature and alpha schedules: callbacks that assign the Distiller's schedule variables.

`Distiller.temperature` (the distillation loss' own temperature variable) and `Distiller.alpha` are
non-trainable `keras.Variable`s read inside the train step and validated on every assignment (by
`keras_kd.losses.hyperparameters`, which also checks a schedule's listed values up front). Assigning
them from a callback changes the loss without retracing a compiled (`jit_compile=True`) step. A schedule is either

- a callable of the step (or epoch) returning the value, e.g. a `keras.optimizers.schedules`
  `LearningRateSchedule` or `lambda step: 4.0 - 3.0 * min(step / 1000, 1.0)`; or
- a list of `(step, value)` pairs, piecewise constant: from `step` on, the value is `value`
  (before the first step, the first value).

With `unit="step"` the step is the optimizer's iteration count (it keeps counting across epochs
and resumed fits); with `unit="epoch"` it is the epoch index, assigned at each epoch's start. The
current value is added to the epoch logs under `temperature` / `alpha`.
"""

import numbers

import keras
import numpy as np

from keras_kd.losses.hyperparameters import check_alpha, check_temperature

UNITS = ("step", "epoch")


def _as_number(value):
    """Python numbers as floats (messages show `0.0`); anything else as is, for the check to name."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


class _VariableScheduler(keras.callbacks.Callback):
    """Base class: assign `getattr(model, attribute)` from `schedule` at each step or epoch."""

    attribute = None

    def __init__(self, schedule, unit="step", verbose=0):
        super().__init__()
        if unit not in UNITS:
            raise ValueError(f"`unit` must be one of {UNITS}. Received: unit={unit!r}")
        if isinstance(schedule, (list, tuple)):
            schedule = self._check_pairs(schedule)
        elif not callable(schedule):
            raise TypeError(
                f"`schedule` must be a callable of the {unit} or a list of ({unit}, value) pairs. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.unit = unit
        self.verbose = verbose

    # ---------------------------------------------------------------- values
    def check_value(self, value):
        raise NotImplementedError

    def _check_pairs(self, pairs):
        checked = []
        for pair in pairs:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"`schedule` pairs must be (step, value). Received: {pair!r}")
            step, value = pair
            checked.append((int(step), self.check_value(_as_number(value))))
        if not checked or any(a[0] >= b[0] for a, b in zip(checked, checked[1:], strict=False)):
            raise ValueError(
                f"`schedule` must be a non-empty list of pairs with increasing steps. Received: {pairs!r}"
            )
        return checked

    def value_at(self, step):
        """The scheduled value at `step` (validated)."""
        if isinstance(self.schedule, list):
            index = int(np.searchsorted([s for s, _ in self.schedule], step, side="right")) - 1
            return self.schedule[max(index, 0)][1]
        return self.check_value(_as_number(self.schedule(step)))

    # ---------------------------------------------------------------- callback
    def _variable(self):
        variable = getattr(self.model, self.attribute, None)
        if variable is None:
            raise ValueError(
                f"`{type(self).__name__}` needs a model with a `{self.attribute}` variable (a keras_kd.Distiller"
                + (
                    " whose distillation loss has a temperature"
                    if self.attribute == "temperature"
                    else ""
                )
                + f"). Received: model={self.model.name!r}"
            )
        return variable

    def _assign(self, step):
        value = self.value_at(step)
        self._variable().assign(value)
        if self.verbose:
            print(f"\n{type(self).__name__}: {self.unit} {step}: {self.attribute} = {value:.6g}")

    def on_train_begin(self, logs=None):
        self._variable()

    def on_epoch_begin(self, epoch, logs=None):
        if self.unit == "epoch":
            self._assign(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit == "step":
            self._assign(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.attribute] = float(keras.ops.convert_to_numpy(self._variable()))

    # ---------------------------------------------------------------- config
    def get_config(self):
        if isinstance(self.schedule, list):
            schedule = [list(pair) for pair in self.schedule]
        else:
            schedule = keras.saving.serialize_keras_object(self.schedule)
        return {"schedule": schedule, "unit": self.unit, "verbose": self.verbose}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_kd")
class TemperatureScheduler(_VariableScheduler):
    """Schedule `Distiller.temperature` (values must be > 0).

    Example (anneal 8 → 1 over 1000 steps, Keras schedule):
    >>> TemperatureScheduler(keras.optimizers.schedules.PolynomialDecay(8.0, 1000, 1.0))
    >>> TemperatureScheduler([(0, 8.0), (500, 4.0), (1000, 1.0)])
    """

    attribute = "temperature"

    def check_value(self, value):
        return check_temperature(value)


@keras.saving.register_keras_serializable(package="keras_kd")
class AlphaScheduler(_VariableScheduler):
    """Schedule `Distiller.alpha`, the distillation weight (values must be in [0, 1]).

    Example (start on labels, move to the teacher by epoch 3):
    >>> AlphaScheduler([(0, 0.0), (1, 0.5), (3, 0.9)], unit="epoch")
    """

    attribute = "alpha"

    def check_value(self, value):
        return check_alpha(value)
