"""Logit distillation losses: thin `keras.losses.Loss` classes around `functional.py`.

Convention (Keras' `call(y_true, y_pred)`): **`y_true` is the teacher's output, `y_pred` the
student's**, both logits. Keras' `Loss.__call__` applies `reduction`, `sample_weight` and the
`tf.distribute` scaling (so a custom `train_step` under `MirroredStrategy` gets global-batch losses).
"""

import numbers

import keras

from keras_kd.defaults import DEFAULT_TEMPERATURE
from keras_kd.losses import functional
from keras_kd.losses.hyperparameters import CheckedVariable, check_temperature  # noqa: F401
from keras_kd.losses.registry import register


def config_float(value):
    """A Python float from a number or a (scheduled) `keras.Variable`, for `get_config`."""
    if isinstance(value, numbers.Number):
        return float(value)
    return float(keras.ops.convert_to_numpy(value))


class TemperatureLoss(keras.losses.Loss):
    """Base class for losses with a softmax temperature `T`; the loss owns its temperature.

    `temperature` (a Python number, a scalar tensor or a `keras.Variable`; its current value is
    taken) is validated by `keras_kd.losses.hyperparameters.check_temperature`: finite and > 0.
    `temperature_variable` is the loss' temperature as a non-trainable `keras.Variable` whose
    `assign` validates too; it is created on first use (in the current distribution scope), from
    then on the loss reads it. `keras_kd.Distiller` exposes it as `distiller.temperature` and
    `TemperatureScheduler` assigns it, so a compiled step never retraces.
    """

    def __init__(self, temperature=DEFAULT_TEMPERATURE, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._temperature_value = check_temperature(temperature)
        self._temperature_variable = None

    @property
    def temperature(self):
        """`T`: the `temperature_variable` once created, a Python float before."""
        if self._temperature_variable is not None:
            return self._temperature_variable
        return self._temperature_value

    @temperature.setter
    def temperature(self, value):
        value = check_temperature(value)
        if self._temperature_variable is not None:
            self._temperature_variable.assign(value)
        else:
            self._temperature_value = value

    @property
    def temperature_variable(self):
        """The temperature as a validated non-trainable `keras.Variable` (created on first access)."""
        if self._temperature_variable is None:
            self._temperature_variable = CheckedVariable(self._temperature_value, "temperature")
        return self._temperature_variable

    def share_temperature(self, variable):
        """Read the temperature from `variable` from now on, e.g. another loss' `temperature_variable`.

        Several losses that must follow one temperature (a schedule, a tuner's trial) share one
        variable this way. `variable` is a scalar float `keras.Variable` whose value is a valid
        temperature; the loss' own value (or variable) is no longer read. Returns `variable`.
        """
        if not isinstance(variable, keras.Variable):
            raise TypeError(
                "`variable` must be a keras.Variable (e.g. another loss' `temperature_variable`). "
                f"Received: variable={variable!r} of type {type(variable).__name__}"
            )
        if tuple(variable.shape) != () or "float" not in str(variable.dtype):
            raise ValueError(
                "`variable` must be a scalar float variable. "
                f"Received: shape={tuple(variable.shape)}, dtype={variable.dtype}"
            )
        check_temperature(variable)
        self._temperature_variable = variable
        return variable

    def get_config(self):
        config = super().get_config()
        config["temperature"] = config_float(self.temperature)
        return config


@register("kl", "kl_divergence", "hinton")
class KLDivergence(TemperatureLoss):
    """Temperature-scaled KL divergence, Hinton et al. 2015 (the classic KD loss).

    `loss = T² · mean_batch KL(softmax(t/T) ‖ softmax(s/T))`, computed with `log_softmax` in float32.

    Args:
        temperature: softmax temperature `T > 0` (default `keras_kd.defaults.DEFAULT_TEMPERATURE`).
        reduction, name, dtype: as in `keras.losses.Loss`.

    Example:
    >>> KLDivergence(temperature=2.0)([[3., 1., -2.]], [[-1., 2., .5]])  # 3.3526
    """

    def __init__(self, temperature=DEFAULT_TEMPERATURE, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
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
        self, temperature=DEFAULT_TEMPERATURE, reduction="sum_over_batch_size", name="soft_target_cross_entropy", dtype=None
    ):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        return functional.soft_target_cross_entropy(y_true, y_pred, self.temperature)


@register("reverse_kl")
class ReverseKL(TemperatureLoss):
    """Reverse (mode-seeking) KL, as in MiniLLM (Gu et al. 2024).

    `loss = T² · mean_batch KL(softmax(s/T) ‖ softmax(t/T))`, in log-space and float32.
    """

    def __init__(self, temperature=DEFAULT_TEMPERATURE, reduction="sum_over_batch_size", name="reverse_kl", dtype=None):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        return functional.reverse_kl(y_true, y_pred, self.temperature)


@register("js", "js_divergence", "jensen_shannon")
class JSDivergence(TemperatureLoss):
    """Jensen-Shannon divergence between softened teacher and student distributions.

    `loss = T² · mean_batch ½ [KL(p ‖ m) + KL(q ‖ m)]`, `p = softmax(t/T)`, `q = softmax(s/T)`,
    `m = (p + q)/2`; symmetric and bounded by `T² log 2`.
    """

    def __init__(self, temperature=DEFAULT_TEMPERATURE, reduction="sum_over_batch_size", name="js_divergence", dtype=None):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        return functional.js_divergence(y_true, y_pred, self.temperature)


@register("mse_logits", "logit_regression")
class MSELogits(keras.losses.Loss):
    """Logit regression, Ba & Caruana 2014: `loss = mean_batch mean_c (s_c - t_c)²` (no temperature)."""

    def __init__(self, reduction="sum_over_batch_size", name="mse_logits", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return functional.mse_logits(y_true, y_pred)


@register("hard", "hard_distillation")
class HardDistillation(keras.losses.Loss):
    """Hard-label distillation, Touvron et al. 2021 (DeiT): cross-entropy on the teacher's argmax.

    `loss = mean_batch -log_softmax(s)[argmax t]`. No temperature: `Distiller` schedules none.
    """

    def __init__(self, reduction="sum_over_batch_size", name="hard_distillation", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return functional.hard_distillation(y_true, y_pred)


def _teacher_and_labels(loss, y_true):
    if not isinstance(y_true, dict) or "logits" not in y_true or "labels" not in y_true:
        raise ValueError(
            f"`{type(loss).__name__}` needs the ground-truth labels: call it as "
            "`loss({'logits': teacher_logits, 'labels': labels}, student_logits)` (the Distiller does "
            f"this for losses with `needs_labels = True`). Received: y_true={y_true!r}"
        )
    return y_true["logits"], y_true["labels"]


@register("dkd", "decoupled_kd")
class DKD(TemperatureLoss):
    """Decoupled Knowledge Distillation, Zhao et al. 2022 (CVPR).

    `loss = T² · mean_batch [alpha · KL(b^T ‖ b^S) + beta · KL(p̂^T ‖ p̂^S)]` where `b = [p_g, 1 - p_g]`
    (target class `g` vs the rest) and `p̂` the softmax over the non-target classes (see
    `functional.dkd`).

    DKD needs the ground-truth label, so `needs_labels = True`: `y_true` is a dict
    `{"logits": teacher_logits, "labels": labels}` (sparse class ids or one-hot). `Distiller` builds
    this dict from the batch's `y` for every distillation loss that declares `needs_labels`.

    Args:
        temperature: `T > 0` (paper: 4.0).
        alpha: weight of the target-class term TCKD (paper: 1.0).
        beta: weight of the non-target term NCKD (paper: 8.0 on CIFAR-100, 0.5 on ImageNet).
    """

    needs_labels = True

    def __init__(
        self, temperature=4.0, alpha=1.0, beta=8.0, reduction="sum_over_batch_size", name="dkd", dtype=None
    ):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)
        for key, value in (("alpha", alpha), ("beta", beta)):
            if not float(value) >= 0:
                raise ValueError(f"`{key}` must be >= 0. Received: {key}={value}")
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, y_true, y_pred):
        teacher_logits, labels = _teacher_and_labels(self, y_true)
        return functional.dkd(teacher_logits, y_pred, labels, self.temperature, self.alpha, self.beta)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}


@register("dist")
class DIST(TemperatureLoss):
    """DIST, Huang et al. 2022, "Knowledge Distillation from A Stronger Teacher" (NeurIPS).

    `loss = T² · [beta · mean_i (1 - ρ(y^S_i, y^T_i)) + gamma · mean_c (1 - ρ(y^S_{:,c}, y^T_{:,c}))]`
    with `ρ` the Pearson correlation and `y = softmax(z/T)`: inter-class (per example) plus
    intra-class (per class, across the batch) relations (see `functional.dist`).

    Args:
        temperature: `T > 0` (paper: 1.0 on ImageNet, 4.0 on CIFAR-100).
        beta, gamma: inter- and intra-class weights (paper: 1.0 and 1.0).
    """

    def __init__(
        self, temperature=1.0, beta=1.0, gamma=1.0, reduction="sum_over_batch_size", name="dist", dtype=None
    ):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)
        self.beta = float(beta)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        return functional.dist(y_true, y_pred, self.temperature, self.beta, self.gamma)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "gamma": self.gamma}
