"""keras.distillation's loss objects translated into keras-kd terms: values against Keras' own
Distiller (where Keras is right) and against T²·KL (where it is not), and serialization."""

import keras
import numpy as np
import pytest

from keras_kd import Distiller, losses
from keras_kd.losses import keras_distillation

kd = keras.distillation
T_LOGITS = np.array([[3.0, 1.0, -2.0]], "float32")
S_LOGITS = np.array([[-1.0, 2.0, 0.5]], "float32")


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.mark.parametrize(
    "loss", ["kl_divergence", "kld", keras.losses.KLDivergence(), keras.losses.kl_divergence, ["kl_divergence"]]
)
def test_logits_distillation_kl_becomes_true_kl(loss):
    translated = keras_distillation.logits_loss(kd.LogitsDistillation(temperature=2.0, loss=loss))
    assert isinstance(translated, losses.KLDivergence) and translated.temperature == 2.0
    assert float(translated(T_LOGITS, S_LOGITS)) == pytest.approx(3.3526, abs=1e-4)


def test_logits_distillation_cross_entropy_becomes_soft_target_cross_entropy():
    translated = keras_distillation.logits_loss(kd.LogitsDistillation(temperature=4.0, loss="categorical_crossentropy"))
    assert isinstance(translated, losses.SoftTargetCrossEntropy)
    p = np.exp(np_log_softmax(T_LOGITS / 4.0))
    expected = -16.0 * (p * np_log_softmax(S_LOGITS / 4.0)).sum()
    assert float(translated(T_LOGITS, S_LOGITS)) == pytest.approx(expected, rel=1e-5)


def test_other_logits_losses_keep_keras_meaning():
    distillation = kd.LogitsDistillation(temperature=2.0, loss="mse")
    translated = keras_distillation.logits_loss(distillation)
    assert isinstance(translated, keras_distillation.LogitsTermLoss)
    expected = float(distillation.compute_loss(T_LOGITS, S_LOGITS))
    assert float(translated(T_LOGITS, S_LOGITS)) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(np.mean((T_LOGITS / 2 - S_LOGITS / 2) ** 2), rel=1e-6)


def test_multi_output_and_custom_losses_are_refused():
    with pytest.raises(ValueError, match=r"`LogitsDistillation\(loss=...\)` must hold one loss"):
        keras_distillation.translate(kd.LogitsDistillation(loss=["kl_divergence", "categorical_crossentropy"]))

    class Custom(kd.DistillationLoss):
        def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
            return 0.0

    with pytest.raises(TypeError, match="a custom Custom"):
        keras_distillation.translate([Custom()])
    with pytest.raises(ValueError, match=r"`distillation_loss_weights` must hold one weight per distillation loss \(1\)"):
        keras_distillation.translate([kd.LogitsDistillation()], [1.0, 2.0])


def models():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="relu", name="dense_0")(inputs)
    hidden = keras.layers.Dense(8, activation="relu", name="dense_1")(hidden)
    teacher = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden), name="teacher")
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", name="dense_1")(inputs)
    student = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden), name="student")
    return teacher, student


def keras_form_losses():
    return [
        kd.LogitsDistillation(temperature=2.0, loss="mse"),
        kd.FeatureDistillation(loss="mse", teacher_layer_name="dense_1", student_layer_name="dense_1"),
        kd.FeatureDistillation(loss="mae"),
    ]


def test_total_loss_equals_keras_distiller_where_keras_is_right():
    """Same objective as keras.distillation.Distiller: w·student + (1 - w)·Σ w_i L_i (no KL here)."""
    teacher, student = models()
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 16)
    student_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kwargs = dict(distillation_losses=keras_form_losses(), distillation_loss_weights=[0.5, 2.0, 1.5], student_loss_weight=0.3)
    theirs = kd.Distiller(teacher=teacher, student=student, **kwargs)
    theirs.compile(optimizer="adam", loss=student_loss)
    expected = float(theirs.compute_loss(x=x, y=y, y_pred=student(x), training=False))

    ours = Distiller(teacher=teacher, student=student, **kwargs)
    ours.compile(optimizer="adam", loss=student_loss)
    terms = ours.compute_distillation_losses(y, ours._student_outputs(x, training=False), ours.teacher_outputs(x))
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(ours.alpha) == pytest.approx(0.7)


def test_keras_form_and_kd_form_do_not_mix():
    teacher, student = models()
    with pytest.raises(ValueError, match="use one form"):
        Distiller(student=student, teacher=teacher, alpha=0.3, distillation_losses=kd.LogitsDistillation())
    with pytest.raises(ValueError, match="use one form"):
        Distiller(student=student, teacher=teacher, distillation_loss="kl", distillation_losses=kd.LogitsDistillation())
    with pytest.raises(ValueError, match="`distillation_losses` is required"):
        Distiller(student=student, teacher=teacher, student_loss_weight=0.5)
    with pytest.raises(ValueError, match=r"`student_loss_weight` must be in \[0, 1\]. Received: student_loss_weight=1.5"):
        Distiller(student=student, teacher=teacher, distillation_losses=kd.LogitsDistillation(), student_loss_weight=1.5)


def test_keras_default_student_loss_weight_and_logits_string_losses():
    teacher, student = models()
    distiller = Distiller(teacher=teacher, student=student, distillation_losses=kd.LogitsDistillation(temperature=3.0))
    assert float(distiller.alpha) == pytest.approx(0.5) and float(distiller.temperature) == 3.0
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert distiller.loss.get_config()["from_logits"] is True  # the student outputs logits


def test_serialization_round_trip(tmp_path):
    term = keras_distillation.LogitsTermLoss(loss="mae", temperature=2.5)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(term))
    assert type(again) is keras_distillation.LogitsTermLoss and again.get_config() == term.get_config()
    layer = keras_distillation.LayerOutputDistillation(loss="mse", teacher_key="a", student_key="b", weight=0.5)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert again.get_config() == layer.get_config()

    teacher, student = models()
    distiller = Distiller(
        teacher=teacher, student=student, distillation_losses=keras_form_losses(),
        distillation_loss_weights=[1.0, 0.5, 0.25], student_loss_weight=0.2,
    )
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    config = distiller.get_config()
    assert config["student_loss_weight"] == pytest.approx(0.2) and "alpha" not in config
    restored = Distiller.from_config(config)
    assert restored.get_config()["distillation_loss_weights"] == [1.0, 0.5, 0.25]
    assert float(restored.alpha) == pytest.approx(0.8) and restored.teacher_features == distiller.teacher_features
    distiller.temperature.assign(4.0)
    path = str(tmp_path / "d.keras")
    distiller.save(path)
    reloaded = keras.saving.load_model(path)
    assert float(reloaded.temperature) == 4.0 and float(reloaded.alpha) == pytest.approx(0.8)
    x = np.ones((2, 6), "float32")
    np.testing.assert_allclose(reloaded.student(x), distiller.student(x), rtol=1e-6)
