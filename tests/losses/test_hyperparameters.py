"""temperature and alpha are validated wherever they can be set (issue 17): constructors (numbers,
tensors, variables), `.assign` on the Distiller's variables (eager and compiled), schedules, and a
loss config given together with a config value."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd import Distiller, losses
from keras_kd.callbacks import AlphaScheduler, TemperatureScheduler
from keras_kd.losses.hyperparameters import CheckedVariable, check_alpha, check_temperature

BAD_TEMPERATURES = [
    (float("inf"), r"`temperature` must be finite and > 0. Received: temperature=inf"),
    (float("nan"), r"`temperature` must be finite and > 0. Received: temperature=nan"),
    (-1, r"`temperature` must be > 0. Received: temperature=-1"),
    (0, r"`temperature` must be > 0. Received: temperature=0"),
    (None, r"`temperature` must be a number > 0. Received: temperature=None of type NoneType"),
    ("abc", r"`temperature` must be a number > 0. Received: temperature='abc' of type str"),
    (True, r"`temperature` must be a number > 0. Received: temperature=True of type bool"),
]
BAD_ALPHAS = [
    (float("inf"), r"`alpha` must be a finite number in \[0, 1\]. Received: alpha=inf"),
    (-1, r"`alpha` must be in \[0, 1\]. Received: alpha=-1"),
    (1.5, r"`alpha` must be in \[0, 1\]. Received: alpha=1.5"),
    (None, r"`alpha` must be a number in \[0, 1\]. Received: alpha=None of type NoneType"),
    ("abc", r"`alpha` must be a number in \[0, 1\]. Received: alpha='abc' of type str"),
]


def tiny(units, name):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units), keras.layers.Dense(2)], name=name)


@pytest.mark.parametrize("value, message", BAD_TEMPERATURES)
def test_bad_temperature_in_every_logit_loss(value, message):
    for cls in (losses.KLDivergence, losses.ReverseKL, losses.DKD, losses.DIST):
        with pytest.raises(ValueError, match=message):
            cls(temperature=value)


@pytest.mark.parametrize("value, message", BAD_ALPHAS)
def test_bad_alpha_in_the_distiller(value, message):
    with pytest.raises(ValueError, match=message):
        Distiller(tiny(2, "student"), tiny(8, "teacher"), alpha=value)


@pytest.mark.parametrize(
    "value, message",
    [
        (tf.constant(-1.0), r"`temperature` must be > 0. Received: temperature=-1.0"),
        (keras.Variable(0.0), r"`temperature` must be > 0. Received: temperature=0.0"),
        (np.float32(np.inf), r"`temperature` must be finite and > 0. Received: temperature=inf"),
        (tf.constant([1.0, 2.0]), r"`temperature` must be a number > 0 \(a Python number, a scalar tensor"),
    ],
)
def test_tensors_and_variables_are_checked_by_value(value, message):
    with pytest.raises(ValueError, match=message):
        losses.KLDivergence(temperature=value)


def test_valid_tensors_and_variables_give_their_value():
    assert check_temperature(tf.constant(2.5)) == 2.5
    assert check_temperature(keras.Variable(3.0)) == 3.0
    assert check_alpha(np.float64(0.25)) == 0.25
    assert check_alpha(keras.Variable(0.0)) == 0.0
    distiller = Distiller(tiny(2, "student"), tiny(8, "teacher"), alpha=tf.constant(0.3))
    assert float(distiller.alpha) == pytest.approx(0.3)


def test_assign_on_the_distillers_variables_is_validated_and_leaves_the_value():
    distiller = Distiller(tiny(2, "student"), tiny(8, "teacher"), losses.KLDivergence(2.0), alpha=0.6)
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\]. Received: alpha=1.5"):
        distiller.alpha.assign(1.5)
    with pytest.raises(ValueError, match=r"`temperature` must be > 0. Received: temperature=0"):
        distiller.temperature.assign(0)
    with pytest.raises(ValueError, match=r"`temperature` must be finite and > 0. Received: temperature=inf"):
        distiller.temperature.assign(float("inf"))
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\]. Received: alpha=1.1"):
        distiller.alpha.assign_add(0.5)
    with pytest.raises(ValueError, match=r"`temperature` must be > 0. Received: temperature=-1.0"):
        distiller.temperature.assign_sub(3.0)
    assert float(distiller.alpha) == pytest.approx(0.6) and float(distiller.temperature) == 2.0
    distiller.temperature.assign(3.0)
    distiller.alpha.assign(0.0)
    assert float(distiller.temperature) == 3.0 and float(distiller.alpha) == 0.0


def test_assign_in_a_compiled_function_fails_the_step():
    variable = CheckedVariable(0.5, "alpha")

    @tf.function
    def assign(value):
        variable.assign(value)
        return variable.value

    assert float(assign(tf.constant(0.25))) == 0.25
    with pytest.raises(tf.errors.InvalidArgumentError, match="`alpha` out of range"):
        assign(tf.constant(2.0))


def test_the_loss_owns_its_temperature_variable():
    loss = losses.KLDivergence(temperature=2.0)
    assert loss.temperature == 2.0  # a float until the variable exists
    distiller = Distiller(tiny(2, "student"), tiny(8, "teacher"), loss)
    assert distiller.temperature is loss.temperature_variable is loss.temperature
    distiller.temperature.assign(5.0)
    assert loss.get_config()["temperature"] == 5.0
    loss.temperature = 3.0  # the setter assigns the variable (validated)
    assert float(distiller.temperature) == 3.0
    with pytest.raises(ValueError, match=r"`temperature` must be > 0. Received: temperature=-2"):
        loss.temperature = -2
    assert any(v is distiller.temperature for v in distiller.non_trainable_variables)  # saved with it


def test_losses_share_one_temperature_variable():
    first, second = losses.KLDivergence(temperature=2.0), losses.SoftTargetCrossEntropy(temperature=7.0)
    shared = second.share_temperature(first.temperature_variable)
    assert shared is first.temperature_variable is second.temperature_variable is second.temperature
    first.temperature = 4.0  # one assignment moves both losses
    assert second.get_config()["temperature"] == 4.0
    teacher, student = np.array([[3.0, 1.0, -2.0]]), np.array([[-1.0, 2.0, 0.5]])
    t, s = teacher / 4.0, student / 4.0
    p = np.exp(t - np.log(np.exp(t).sum()))
    log_q = s - np.log(np.exp(s).sum())
    np.testing.assert_allclose(float(second(teacher, student)), 16.0 * -(p * log_q).sum(), rtol=1e-5)


@pytest.mark.parametrize(
    "variable, error, message",
    [
        (2.0, TypeError, r"`variable` must be a keras.Variable .* Received: variable=2.0 of type float"),
        (keras.Variable([1.0, 2.0], trainable=False), ValueError, r"must be a scalar float variable. Received: shape=\(2,\)"),
        (keras.Variable(2, dtype="int32", trainable=False), ValueError, r"Received: shape=\(\), dtype=int32"),
        (keras.Variable(-1.0, trainable=False), ValueError, r"`temperature` must be > 0. Received: temperature=-1.0"),
    ],
)
def test_share_temperature_refuses_what_is_not_a_temperature(variable, error, message):
    loss = losses.KLDivergence(temperature=2.0)
    with pytest.raises(error, match=message):
        loss.share_temperature(variable)
    assert loss.temperature == 2.0  # unchanged


def test_losses_without_temperature_have_none():
    assert Distiller(tiny(2, "student"), tiny(8, "teacher"), losses.MSELogits()).temperature is None


@pytest.mark.parametrize(
    "scheduler, schedule, message",
    [
        (TemperatureScheduler, [(0, 2.0), (5, float("inf"))], r"`temperature` must be finite and > 0"),
        (TemperatureScheduler, [(0, None)], r"`temperature` must be a number > 0. Received: temperature=None"),
        (AlphaScheduler, [(0, 0.5), (3, -1)], r"`alpha` must be in \[0, 1\]. Received: alpha=-1.0"),
        (AlphaScheduler, [(0, "abc")], r"`alpha` must be a number in \[0, 1\]. Received: alpha='abc'"),
    ],
)
def test_schedules_check_listed_values_up_front(scheduler, schedule, message):
    with pytest.raises(ValueError, match=message):
        scheduler(schedule)


def test_callable_schedules_are_checked_when_they_run():
    scheduler = TemperatureScheduler(lambda step: 0.0 if step > 1 else 2.0)
    assert scheduler.value_at(0) == 2.0
    with pytest.raises(ValueError, match=r"`temperature` must be > 0. Received: temperature=0.0"):
        scheduler.value_at(2)


def test_a_loss_config_and_an_argument_may_not_disagree():
    loss = losses.get({"name": "kl", "temperature": 2.0}, temperature=2.0)  # the same value: fine
    assert loss.temperature == 2.0
    with pytest.raises(ValueError, match=r"`temperature` is given twice with different values: 2.0 in the loss config"):
        losses.get({"name": "kl", "temperature": 2.0}, temperature=4.0)
    assert losses.get("kl", temperature=4.0).temperature == 4.0
