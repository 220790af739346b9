"""TemperatureScheduler / AlphaScheduler: values, validation, config, and no retracing under XLA."""

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd import losses as kd_losses
from keras_kd.callbacks import AlphaScheduler, TemperatureScheduler


def test_pairs_are_piecewise_constant():
    scheduler = TemperatureScheduler([(0, 8.0), (10, 4.0), (20, 1.0)])
    assert [scheduler.value_at(s) for s in (0, 9, 10, 19, 20, 1000)] == [
        8.0,
        8.0,
        4.0,
        4.0,
        1.0,
        1.0,
    ]
    assert (
        AlphaScheduler([(5, 0.2), (6, 0.9)]).value_at(0) == 0.2
    )  # before the first step: first value


def test_callables_and_keras_schedules():
    decay = keras.optimizers.schedules.PolynomialDecay(8.0, decay_steps=10, end_learning_rate=2.0)
    scheduler = TemperatureScheduler(decay)
    np.testing.assert_allclose(
        [scheduler.value_at(0), scheduler.value_at(5), scheduler.value_at(50)], [8.0, 5.0, 2.0]
    )
    assert AlphaScheduler(lambda epoch: 0.1 * epoch, unit="epoch").value_at(3) == pytest.approx(0.3)


def test_values_are_validated():
    with pytest.raises(ValueError, match=r"`temperature` must be > 0. Received: temperature=0.0"):
        TemperatureScheduler([(0, 1.0), (3, 0.0)])
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\]. Received: alpha=1.5"):
        AlphaScheduler([(0, 1.5)])
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\]. Received: alpha=-0.5"):
        AlphaScheduler(lambda step: -0.5).value_at(0)
    with pytest.raises(ValueError, match="increasing steps"):
        AlphaScheduler([(3, 0.1), (1, 0.2)])
    with pytest.raises(
        ValueError, match=r"`unit` must be one of \('step', 'epoch'\). Received: unit='batch'"
    ):
        AlphaScheduler([(0, 0.1)], unit="batch")
    with pytest.raises(TypeError, match="`schedule` must be a callable"):
        TemperatureScheduler(4.0)


def test_config_round_trip():
    for scheduler in (
        TemperatureScheduler([(0, 8.0), (100, 2.0)], unit="epoch", verbose=1),
        TemperatureScheduler(keras.optimizers.schedules.ExponentialDecay(4.0, 100, 0.5)),
        AlphaScheduler([(0, 0.0), (2, 0.9)]),
    ):
        config = scheduler.get_config()
        clone = type(scheduler).from_config(config)
        assert clone.get_config() == config
        assert clone.value_at(150) == scheduler.value_at(150)


class CountingKL(kd_losses.KLDivergence):
    """KL that counts how often its Python `call` runs: once per trace of a compiled step."""

    traces = 0

    def call(self, y_true, y_pred):
        CountingKL.traces += 1
        return super().call(y_true, y_pred)


def np_kl(t, s, T):
    def log_softmax(z):
        z = z / T - (z / T).max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    lp, lq = log_softmax(np.float64(t)), log_softmax(np.float64(s))
    return T**2 * (np.exp(lp) * (lp - lq)).sum(-1).mean()


def _models(rng):
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, size=16)
    return student, teacher, x, y


def test_schedules_change_the_loss_without_retracing(rng):
    student, teacher, x, y = _models(rng)
    CountingKL.traces = 0
    distiller = keras_kd.Distiller(
        student, teacher, distillation_loss=CountingKL(temperature=2.0), alpha=0.5
    )
    # lr = 0: the weights never move, so every change of the logged loss comes from the schedules.
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True)
    temperatures = TemperatureScheduler([(0, 1.0), (1, 4.0), (2, 0.5)], unit="epoch")
    alphas = AlphaScheduler([(0, 0.2), (4, 0.7)])  # steps: 2 per epoch, so epoch 2 uses 0.7
    history = distiller.fit(
        x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[temperatures, alphas]
    )
    assert CountingKL.traces == 1
    assert history.history["temperature"] == [1.0, 4.0, 0.5]
    np.testing.assert_allclose(history.history["alpha"], [0.2, 0.2, 0.7])

    t_logits, s_logits = np.asarray(teacher(x)), np.asarray(student(x))
    expected_distill = [np_kl(t_logits, s_logits, T) for T in (1.0, 4.0, 0.5)]
    np.testing.assert_allclose(history.history["distillation_loss"], expected_distill, rtol=1e-5)
    ce = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, s_logits))
    np.testing.assert_allclose(history.history["student_loss"], [ce] * 3, rtol=1e-5)
    expected_total = [
        a * d + (1 - a) * ce for a, d in zip((0.2, 0.2, 0.7), expected_distill, strict=True)
    ]
    np.testing.assert_allclose(history.history["loss"], expected_total, rtol=1e-5)


def test_per_step_schedule_uses_the_optimizer_iterations(rng):
    student, teacher, x, y = _models(rng)
    distiller = keras_kd.Distiller(student, teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(np.asarray(distiller.temperature)))

    scheduler = TemperatureScheduler(lambda step: 1.0 + step)
    distiller.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[scheduler, Spy()])
    assert seen == [1.0, 2.0, 3.0, 4.0]


def test_temperature_scheduler_needs_a_temperature(rng):
    student, teacher, x, y = _models(rng)
    distiller = keras_kd.Distiller(student, teacher, distillation_loss=kd_losses.MSELogits())
    distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="needs a model with a `temperature` variable"):
        distiller.fit(x, y, epochs=1, verbose=0, callbacks=[TemperatureScheduler([(0, 2.0)])])
