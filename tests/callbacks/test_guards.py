"""NonFiniteLossGuard: stops on NaN/Inf and names the loss term that went non-finite."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_kd import Distiller
from keras_kd.callbacks import NonFiniteLossGuard
from keras_kd.data import keys


def _mlp(classes=3):
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(classes)])


def _cached_dataset(bad_batch):
    """Cached teacher logits, finite except in batch `bad_batch` (the first batch passes the checks)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5)).astype("float32")
    logits = rng.normal(size=(32, 3)).astype("float32")
    logits[bad_batch * 8 + 2, 0] = np.nan
    y = rng.integers(0, 3, size=(32,)).astype("int32")
    features = {keys.STUDENT_INPUTS: x, keys.TEACHER_OUTPUTS: {"logits": logits}}
    return tf.data.Dataset.from_tensor_slices((features, y)).batch(8)


def _distiller(**kwargs):
    distiller = Distiller(_mlp(), teacher=None, alpha=0.5, **kwargs)
    distiller.compile(optimizer="sgd")
    return distiller


def test_names_the_distillation_term_and_stops():
    # MSE on logits propagates a NaN teacher logit into its value (KL's 0·log 0 masking hides it
    # from the value while the gradient still goes NaN: the guard then sees every term NaN next step).
    distiller = _distiller(distillation_loss=keras.losses.MeanSquaredError())
    distiller.check_values = (
        False  # the in-graph checks would refuse the batch first (tests/test_checks.py)
    )
    guard = NonFiniteLossGuard()
    history = distiller.fit(_cached_dataset(bad_batch=2), epochs=3, verbose=0, callbacks=[guard])
    assert guard.nonfinite_terms == ["distillation_loss"]
    assert guard.message.startswith(
        "Non-finite loss term at epoch 0, batch 2: distillation_loss=nan. Other terms: "
    )
    assert "student_loss=" in guard.message and guard.message.endswith("Training stopped.")
    assert int(distiller.optimizer.iterations) == 3  # stopped right after the bad batch
    assert len(history.epoch) == 1


class NaNFeature(keras.layers.Layer):
    """A feature term that diverges: returns NaN."""

    def call(self, teacher_outputs, student_outputs, sample_weight=None):
        return ops.mean(student_outputs["logits"]) * np.float32(np.nan)


def test_raise_error_names_a_feature_term():
    rng = np.random.default_rng(1)
    x, y = (
        rng.normal(size=(16, 5)).astype("float32"),
        rng.integers(0, 3, size=(16,)).astype("int32"),
    )
    distiller = Distiller(_mlp(), _mlp(), feature_losses=[NaNFeature(name="hidden_mse")])
    distiller.check_values = (
        False  # else keras_kd.checks raises BadBatchError before the guard runs
    )
    distiller.compile(optimizer="sgd")
    with pytest.raises(
        FloatingPointError,
        match=r"Non-finite loss term at epoch 0, batch 0: hidden_mse=nan\. Other terms: .*distillation_loss=\d",
    ):
        distiller.fit(
            x, y, batch_size=8, verbose=0, callbacks=[NonFiniteLossGuard(raise_error=True)]
        )


def test_total_only_and_watched_terms():
    guard = NonFiniteLossGuard(terms=["projection_norm"], raise_error=True)
    with pytest.raises(FloatingPointError, match=r"batch 4: loss=inf\."):
        guard.on_batch_end(4, {"loss": np.float32(np.inf), "accuracy": 0.5})
    with pytest.raises(
        FloatingPointError, match=r"batch 1: projection_norm=nan\. Other terms: loss=0\.5\."
    ):
        guard.on_batch_end(
            1, {"loss": 0.5, "projection_norm": float("nan"), "val_loss": float("nan")}
        )
    guard.on_batch_end(2, {"loss": 0.5, "accuracy": float("nan")})  # not a loss: ignored


def test_config_round_trip():
    guard = NonFiniteLossGuard(terms=["a"], raise_error=True)
    restored = NonFiniteLossGuard.from_config(guard.get_config())
    assert restored.get_config() == {"terms": ["a"], "raise_error": True}
    assert keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(guard)
    ).terms == ["a"]


def test_finite_loss_with_non_finite_weights_is_caught():
    model = _mlp()
    model.compile(optimizer="sgd", loss="mse")
    guard = NonFiniteLossGuard(raise_error=True)
    guard.set_model(model)
    guard.on_train_begin()
    guard.on_batch_end(0, {"loss": 0.5})  # finite loss, finite weights: silent
    kernel = model.layers[0].kernel
    value = kernel.numpy()
    value[1, 2] = np.nan
    kernel.assign(value)
    with pytest.raises(
        FloatingPointError,
        match=rf"Non-finite weights at epoch 0, batch 3 although every loss term is finite \(loss=0\.5\): {kernel.path} hold NaN/Inf",
    ):
        guard.on_batch_end(3, {"loss": 0.5})
    assert guard.nonfinite_terms == [kernel.path]


class SqrtAtZero(keras.layers.Layer):
    """A finite feature term (0) whose gradient is NaN: sqrt at 0 times a zero difference."""

    def call(self, teacher_outputs, student_outputs, sample_weight=None):
        logits = student_outputs["logits"]
        return ops.sqrt(ops.sum(ops.square(logits - ops.stop_gradient(logits))))


def test_stops_when_a_finite_loss_leaves_nan_weights():
    rng = np.random.default_rng(2)
    x, y = (
        rng.normal(size=(16, 5)).astype("float32"),
        rng.integers(0, 3, size=(16,)).astype("int32"),
    )
    distiller = Distiller(_mlp(), _mlp(), feature_losses=[SqrtAtZero(name="sqrt_term")])
    distiller.check_values = (
        False  # the in-graph checks would refuse the update (tests/test_checks.py)
    )
    distiller.compile(optimizer="sgd")
    guard = NonFiniteLossGuard()
    distiller.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[guard])
    assert guard.message.startswith(
        "Non-finite weights at epoch 0, batch 0 although every loss term is finite"
    )
    assert "sqrt_term=0" in guard.message
    assert int(distiller.optimizer.iterations) == 1  # stopped after the first batch
