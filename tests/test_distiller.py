"""Distiller core: loss arithmetic, frozen teacher, fit/evaluate/predict, XLA, MirroredStrategy,
serialization and argument errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd import Distiller, losses
from keras_kd.data import keys

NUM_CLASSES = 4
FEATURES = 12


def make_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    y = np.argmax(x[:, :NUM_CLASSES] + 0.3 * x[:, NUM_CLASSES : 2 * NUM_CLASSES], axis=1).astype("int32")
    return x, y


def mlp(units, name, seed=0):
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(units, activation="relu", kernel_initializer=init),
            keras.layers.Dense(NUM_CLASSES, kernel_initializer=init),
        ],
        name=name,
    )


@pytest.fixture(scope="module")
def teacher_weights():
    """A teacher trained once for the module; each test rebuilds it from these weights."""
    keras.utils.set_random_seed(0)
    x, y = make_data(512, seed=1)
    teacher = mlp(64, "teacher")
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=10, batch_size=64, verbose=0)
    return teacher.get_weights()


@pytest.fixture
def teacher(teacher_weights):
    model = mlp(64, "teacher")
    model.set_weights(teacher_weights)
    return model


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def reference_losses(teacher_logits, student_logits, y, alpha, T):
    log_p, log_q = np_log_softmax(teacher_logits / T), np_log_softmax(student_logits / T)
    kl = (T**2 * np.sum(np.exp(log_p) * (log_p - log_q), -1)).mean()
    ce = -np_log_softmax(student_logits)[np.arange(len(y)), y].mean()
    return alpha * kl + (1 - alpha) * ce, kl, ce


def test_loss_terms_match_numpy(teacher):
    x, y = make_data(64)
    student = mlp(8, "student", seed=3)
    distiller = Distiller(student, teacher, losses.KLDivergence(temperature=3.0), alpha=0.7)
    distiller.compile("sgd")
    t_logits, s_logits = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    terms = distiller.compute_distillation_losses(
        y, {"logits": tf.constant(s_logits)}, {"logits": tf.constant(t_logits)}
    )
    total, kl, ce = reference_losses(t_logits.astype("float64"), s_logits.astype("float64"), y, 0.7, 3.0)
    assert float(terms["distillation_loss"]) == pytest.approx(kl, rel=1e-5)
    assert float(terms["student_loss"]) == pytest.approx(ce, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(total, rel=1e-5)
    # evaluate() on one full batch reports the same numbers (student loss as `loss`)
    logs = distiller.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["distillation_loss"] == pytest.approx(kl, rel=1e-5)
    agreement = np.mean(np.argmax(t_logits, -1) == np.argmax(s_logits, -1))
    assert logs["teacher_agreement"] == pytest.approx(agreement)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_trains_student_and_freezes_teacher(teacher, jit_compile):
    x, y = make_data(512)
    student = mlp(16, "student", seed=5)
    before_teacher = [w.copy() for w in teacher.get_weights()]
    before_student = [w.copy() for w in student.get_weights()]
    distiller = Distiller(student, teacher, alpha=0.5)
    distiller.compile(keras.optimizers.Adam(0.01), metrics=["accuracy"], jit_compile=jit_compile)
    assert distiller.jit_compile is jit_compile
    history = distiller.fit(x, y, epochs=2, batch_size=64, verbose=0)
    logs = history.history
    assert {"loss", "student_loss", "distillation_loss", "accuracy", "teacher_agreement"} <= set(logs)
    assert logs["loss"][1] < logs["loss"][0]
    assert logs["distillation_loss"][1] < logs["distillation_loss"][0]
    for b, a in zip(before_teacher, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical
    assert any(not np.allclose(b, a) for b, a in zip(before_student, student.get_weights(), strict=True))
    assert teacher.trainable is False
    assert len(distiller.trainable_weights) == len(student.trainable_weights)


def test_teacher_runs_in_inference_mode_outside_the_tape():
    seen = []

    class RecordingTeacher(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(NUM_CLASSES)
            self.dropout = keras.layers.Dropout(0.99)

        def call(self, x, training=None):
            seen.append(training)
            return self.dense(self.dropout(x, training=training))

    x, y = make_data(64)
    teacher = RecordingTeacher()
    teacher(x[:2])  # build
    seen.clear()
    distiller = Distiller(mlp(8, "student"), teacher=teacher)  # a tiny teacher: by keyword
    distiller.compile("adam")
    distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert seen and all(flag is False for flag in seen)
    # with dropout(0.99) in training mode the outputs would be random: check determinism
    out1 = distiller.teacher_outputs(x)["logits"]
    out2 = distiller.teacher_outputs(x)["logits"]
    np.testing.assert_array_equal(out1, out2)


def test_sample_weight_and_class_weight(teacher):
    x, y = make_data(64)
    student = mlp(8, "student", seed=2)
    distiller = Distiller(student, teacher, alpha=0.5)
    distiller.compile("sgd", steps_per_execution=2)
    w = (np.arange(64) < 32).astype("float32")
    weighted = distiller.compute_distillation_losses(
        y, {"logits": student(x)}, {"logits": teacher(x)}, sample_weight=tf.constant(w)
    )
    half = distiller.compute_distillation_losses(y[:32], {"logits": student(x[:32])}, {"logits": teacher(x[:32])})
    # sum_over_batch_size: zero weights count in the denominator (Keras semantics)
    assert float(weighted["loss"]) == pytest.approx(float(half["loss"]) / 2, rel=1e-5)
    # class_weight goes through Keras' data adapter as sample weights
    history = distiller.fit(
        x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5, 3: 1.0}, epochs=1, batch_size=16, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])


def test_predict_returns_student_logits_and_student_is_plain(teacher):
    x, _ = make_data(32)
    student = mlp(8, "student")
    distiller = Distiller(student, teacher)
    np.testing.assert_allclose(distiller.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-6)
    assert distiller.student is student
    names = [w.path for w in distiller.student.weights]
    assert not any("teacher" in n for n in names)


def test_cached_teacher_outputs_without_teacher(teacher):
    x, y = make_data(128)
    logits = teacher.predict(x, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices(
        ({keys.STUDENT_INPUTS: x, keys.TEACHER_OUTPUTS: {"logits": logits}}, y)
    ).batch(32)
    student_a, student_b = mlp(8, "student", seed=7), mlp(8, "student", seed=7)
    cached = Distiller(student_a, teacher=None, alpha=0.5)
    online = Distiller(student_b, teacher, alpha=0.5)
    for d in (cached, online):
        d.compile(keras.optimizers.SGD(0.1))
    h_cached = cached.fit(ds, epochs=2, verbose=0).history
    h_online = online.fit(x, y, batch_size=32, shuffle=False, epochs=2, verbose=0).history
    np.testing.assert_allclose(h_cached["loss"], h_online["loss"], rtol=1e-5)
    no_teacher = Distiller(mlp(8, "s"), teacher=None)
    no_teacher.compile("adam")
    with pytest.raises(ValueError, match=r"has no teacher \(`teacher=None`\), so every batch must carry"):
        no_teacher.fit(x, y, epochs=1, verbose=0)


def test_unlabelled_batches_use_distillation_loss_only(teacher):
    x, _ = make_data(64)
    distiller = Distiller(mlp(8, "student"), teacher, alpha=0.3)
    distiller.compile("adam")
    logs = distiller.fit(tf.data.Dataset.from_tensor_slices(x).batch(32), epochs=1, verbose=0).history
    assert logs["loss"][0] == pytest.approx(logs["distillation_loss"][0], rel=1e-6)


def test_mirrored_strategy_matches_default_strategy(teacher_weights):
    x, y = make_data(256)
    assert len(tf.config.list_logical_devices("CPU")) >= 2
    results = []
    for strategy in (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])):
        with strategy.scope():
            teacher = mlp(64, "teacher")
            teacher.set_weights(teacher_weights)
            student = mlp(8, "student", seed=11)
            distiller = Distiller(student, teacher, alpha=0.5)
            distiller.compile(keras.optimizers.SGD(0.05), metrics=["accuracy"])
        history = distiller.fit(x, y, batch_size=64, epochs=2, shuffle=False, validation_data=(x, y), verbose=0)
        results.append((history.history, student.get_weights()))
    (h_default, w_default), (h_mirrored, w_mirrored) = results
    for key in ("loss", "student_loss", "distillation_loss", "val_loss", "val_accuracy", "teacher_agreement"):
        np.testing.assert_allclose(h_mirrored[key], h_default[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for a, b in zip(w_mirrored, w_default, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_config_round_trip(teacher):
    distiller = Distiller(mlp(8, "student"), teacher, losses.SoftTargetCrossEntropy(temperature=2.5), alpha=0.25)
    config = distiller.get_config()
    assert config["alpha"] == 0.25
    restored = Distiller.from_config(config)
    assert float(restored.alpha) == 0.25 and float(restored.temperature) == 2.5
    assert isinstance(restored.distillation_loss, losses.SoftTargetCrossEntropy)
    assert restored.get_config()["distillation_loss"] == config["distillation_loss"]


def test_student_and_distiller_save_and_reload(tmp_path, teacher):
    x, y = make_data(128)
    student = mlp(8, "student")
    distiller = Distiller(student, teacher, losses.KLDivergence(temperature=2.0), alpha=0.6)
    distiller.compile(keras.optimizers.Adam(0.01), metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    distiller.temperature.assign(3.0)  # a scheduled value is state, and is saved

    student_path = tmp_path / "student.keras"
    student.save(student_path)
    reloaded_student = keras.saving.load_model(student_path, safe_mode=True)
    np.testing.assert_allclose(reloaded_student.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-6)
    assert not any("teacher" in w.path for w in reloaded_student.weights)

    path = tmp_path / "distiller.keras"
    distiller.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(reloaded, Distiller)
    assert float(reloaded.temperature) == 3.0 and float(reloaded.alpha) == pytest.approx(0.6)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), distiller.predict(x, verbose=0), rtol=1e-6)
    assert int(reloaded.optimizer.iterations) == int(distiller.optimizer.iterations) == 4
    reloaded.fit(x, y, epochs=1, batch_size=32, verbose=0)  # keeps training
    assert int(reloaded.optimizer.iterations) == 8


def test_argument_errors(teacher):
    student = mlp(8, "student")
    with pytest.raises(TypeError, match=r"`student` must be a keras.Model\. Received: student='model'"):
        Distiller("model", teacher)
    with pytest.raises(TypeError, match=r"`teacher` must be a keras.Model .* Received: teacher=42"):
        Distiller(student, 42)
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\]. Received: alpha=1.5"):
        Distiller(student, teacher, alpha=1.5)
    with pytest.raises(ValueError, match=r"`temperature` must be > 0. Received: temperature=0"):
        Distiller(student, teacher, losses.KLDivergence(temperature=0))
    with pytest.raises(ValueError, match=r"Unknown distillation loss: 'kld'"):
        Distiller(student, teacher, distillation_loss="kld")
    wide = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(NUM_CLASSES + 1)])
    with pytest.raises(ValueError, match=r"teacher logits shape=\(None, 4\), student logits shape=\(None, 5\)"):
        Distiller(wide, teacher)
    frozen = mlp(8, "frozen")
    frozen.trainable = False
    with pytest.raises(ValueError, match="`student` has no trainable weights"):
        Distiller(frozen, teacher)


def test_logit_shape_mismatch_in_cached_data_fails_before_training(teacher):
    x, y = make_data(32)
    ds = tf.data.Dataset.from_tensor_slices(
        ({keys.STUDENT_INPUTS: x, keys.TEACHER_OUTPUTS: {"logits": np.zeros((32, 7), "float32")}}, y)
    ).batch(8)
    student = mlp(8, "student")
    before = [w.copy() for w in student.get_weights()]
    distiller = Distiller(student, teacher=None)
    distiller.compile("adam")
    with pytest.raises(ValueError, match=r"teacher logits shape=\(None, 7\), student logits shape=\(None, 4\)"):
        distiller.fit(ds, epochs=1, verbose=0)
    for b, a in zip(before, student.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_public_api():
    assert keras_kd.__version__
    assert keras_kd.Distiller is Distiller


def test_swapped_positional_arguments_are_an_error_that_shows_the_keyword_form(teacher):
    student = mlp(8, "student")
    with pytest.raises(
        ValueError,
        match=r"The `student` \('teacher', 1,092 parameters\) is larger than the `teacher` \('student', 140 "
        r"parameters\): the arguments look swapped\. .* pass them by keyword: "
        r"keras_kd\.Distiller\(student=student, teacher=teacher, \.\.\.\)",
    ):
        Distiller(teacher, student)  # keras.distillation's order
    assert teacher.trainable  # refused before freezing anything
    with pytest.warns(UserWarning, match=r"The `student` \('teacher', 1,092 parameters\) is larger"):
        Distiller(student=teacher, teacher=student)  # by keyword: allowed, with a warning
    Distiller(mlp(64, "peer"), mlp(8, "other"), mode="mutual")  # peers of any size

    class WeightlessTeacher(keras.layers.Layer):  # e.g. a SavedModel adapter: Keras sees no weights
        def call(self, x):
            return x[:, :NUM_CLASSES]

    weightless = WeightlessTeacher()
    weightless(np.zeros((1, FEATURES), "float32"))
    Distiller(mlp(8, "student"), weightless)  # size unknown: no error


def test_batch_schema_is_defined_once():
    from keras_kd import outputs
    from keras_kd.teachers import base

    assert keys.STUDENT_INPUTS is outputs.STUDENT_INPUTS == "student_inputs"
    assert keys.teacher_view is outputs.teacher_view and base.as_output_dict is outputs.as_output_dict
    assert base.OUTPUT_KEYS is outputs.OUTPUT_KEYS == ("logits", "hidden_states", "attentions", "embedding")
    batch = {outputs.STUDENT_INPUTS: 1, outputs.TEACHER_OUTPUTS: {"logits": 2}}
    assert outputs.student_view(batch) == 1 and outputs.teacher_view(batch) == 1
    assert outputs.cached_teacher_outputs(batch) == {"logits": 2}
    with pytest.raises(ValueError, match="must also hold the student's inputs under 'student_inputs'"):
        outputs.student_view({outputs.TEACHER_INPUTS: 1})
