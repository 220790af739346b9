"""Mixed precision: mixed_float16 (loss scaling) and mixed_bfloat16 give finite float32 losses close
to a float32 run; the teacher can run in a lower precision than the student."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd import Distiller
from keras_kd.distribute import dtype_policy
from tests.test_distribute import _build_models, _data

STEPS_TOLERANCE = {"mixed_float16": 2e-2, "mixed_bfloat16": 1e-1}


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.config.set_dtype_policy("float32")


def _fit(student_policy="float32", teacher_policy=None):
    """Distill 8 SGD steps; returns (distiller, history)."""
    with dtype_policy(teacher_policy or student_policy):
        teacher, _ = _build_models()
    with dtype_policy(student_policy):
        _, student = _build_models()
        distiller = Distiller(student, teacher, alpha=0.7)
        distiller.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), metrics=["accuracy"])
    x, y = _data()
    history = distiller.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2, verbose=0)
    return distiller, history.history


@pytest.fixture(scope="module")
def float32_run():
    distiller, history = _fit("float32")
    return distiller.student.get_weights(), history


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_is_finite_and_close_to_float32(policy, float32_run):
    reference_weights, reference = float32_run
    distiller, history = _fit(policy)
    assert distiller.student.compute_dtype == policy.removeprefix("mixed_")
    assert distiller.student.variable_dtype == "float32"
    if policy == "mixed_float16":  # Keras wraps the optimizer; the Distiller scales the loss
        assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    tolerance = STEPS_TOLERANCE[policy]
    for key in ("loss", "student_loss", "distillation_loss"):
        assert np.all(np.isfinite(history[key])), key
        np.testing.assert_allclose(history[key], reference[key], rtol=tolerance, err_msg=key)
    for got, want in zip(distiller.student.get_weights(), reference_weights, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=tolerance)


def test_loss_terms_are_float32_with_half_precision_logits():
    teacher_logits = tf.constant([[3.0, 1.0, -2.0]], tf.float16)
    student_logits = tf.constant([[-1.0, 2.0, 0.5]], tf.bfloat16)
    distiller = Distiller(keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)]), None)
    distiller.compile()
    distiller.temperature.assign(2.0)
    terms = distiller.compute_distillation_losses(
        tf.constant([1]), {"logits": student_logits}, {"logits": teacher_logits}
    )
    assert {name: value.dtype for name, value in terms.items()} == dict.fromkeys(terms, tf.float32)
    np.testing.assert_allclose(float(terms["distillation_loss"]), 3.3526, atol=2e-3)  # DESIGN.md's example


def test_teacher_in_lower_precision_than_the_student(float32_run):
    reference_weights, reference = float32_run
    distiller, history = _fit("float32", teacher_policy="mixed_bfloat16")
    assert distiller.teacher.compute_dtype == "bfloat16" and distiller.student.compute_dtype == "float32"
    assert not isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    np.testing.assert_allclose(history["distillation_loss"], reference["distillation_loss"], rtol=5e-2)
    for got, want in zip(distiller.student.get_weights(), reference_weights, strict=True):
        np.testing.assert_allclose(got, want, atol=5e-2)
