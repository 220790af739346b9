"""Distiller modes: label-aware losses (DKD), feature losses with projections, multi-teacher,
mutual and teacher-guided training. Each trains a few steps on synthetic data and checks which
weights move and which metrics are logged."""

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd import losses as kd_losses

N, D, C = 16, 5, 3


@pytest.fixture
def data(rng):
    x = rng.normal(size=(N, D)).astype("float32")
    y = rng.integers(0, C, size=N)
    return x, y


def mlp(width, name, hidden_name=None):
    inputs = keras.Input((D,))
    hidden = keras.layers.Dense(width, activation="relu", name=hidden_name or f"{name}_hidden")(
        inputs
    )
    return keras.Model(inputs, keras.layers.Dense(C, name=f"{name}_logits")(hidden), name=name)


def snapshot(weights):
    return [np.array(w) for w in weights]


def moved(before, weights):
    return [not np.allclose(b, np.array(w)) for b, w in zip(before, weights, strict=True)]


def np_log_softmax(z, T=1.0):
    z = np.float64(z) / T
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_kl(log_p, log_q, T):
    return T**2 * (np.exp(log_p) * (log_p - log_q)).sum(-1).mean()


def np_ce(logits, y):
    return -np_log_softmax(logits)[np.arange(len(y)), y].mean()


# ---------------------------------------------------------------- labels reach DKD
def test_dkd_receives_the_labels(data):
    x, y = data
    student, teacher = mlp(4, "student"), mlp(6, "teacher")
    distiller = keras_kd.Distiller(student, teacher, distillation_loss="dkd", alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    history = distiller.fit(x, y, batch_size=N, epochs=1, verbose=0)
    expected = kd_losses.DKD()({"logits": teacher(x), "labels": y}, student(x))
    np.testing.assert_allclose(history.history["distillation_loss"], [float(expected)], rtol=1e-5)
    # Unlabelled evaluation cannot compute DKD: it reports the student only, without failing.
    results = distiller.evaluate(x, batch_size=N, verbose=0, return_dict=True)
    assert "distillation_loss" not in results and "teacher_agreement" in results
    with pytest.raises(ValueError, match="needs labels"):
        distiller.fit(x, batch_size=N, epochs=1, verbose=0)


# ---------------------------------------------------------------- feature losses
@pytest.mark.parametrize("sequential", [False, True])
def test_feature_loss_projection_trains_and_stays_out_of_the_student(data, sequential):
    x, y = data
    if sequential:
        student = keras.Sequential(
            [
                keras.Input((D,)),
                keras.layers.Dense(4, activation="relu", name="s_hidden"),
                keras.layers.Dense(C),
            ],
            name="student",
        )
    else:
        student = mlp(4, "student", hidden_name="s_hidden")
    teacher = mlp(8, "teacher", hidden_name="t_hidden")
    term = kd_losses.HiddenStateMSE(layer_map={"hidden": "hidden"}, weight=2.0)
    distiller = keras_kd.Distiller(
        student,
        teacher,
        feature_losses=[term, kd_losses.CosineEmbedding({"hidden": "hidden"})],
        student_features={"hidden": "s_hidden"},
        teacher_features={"hidden": "t_hidden"},
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    student_before, teacher_before = snapshot(student.weights), snapshot(teacher.weights)
    history = distiller.fit(x, y, batch_size=8, epochs=2, verbose=0)

    assert [tuple(w.shape) for w in term.trainable_weights] == [(4, 8), (8,)]
    projection_ids = {id(w) for t in distiller.feature_losses for w in t.weights}
    assert len(projection_ids) == 4  # one Dense per term
    assert projection_ids <= {id(w) for w in distiller.trainable_weights}
    assert not projection_ids & {id(w) for w in student.weights}
    assert len(student.weights) == 4 and not any("projection" in w.path for w in student.weights)
    assert all(
        not np.allclose(np.array(w), 0) for w in term.trainable_weights[1:]
    )  # bias moved from 0
    assert all(moved(student_before, student.weights))
    assert not any(moved(teacher_before, teacher.weights))
    assert {
        "loss",
        "student_loss",
        "distillation_loss",
        "teacher_agreement",
        "hidden_mse",
        "cosine_embedding",
    } <= set(history.history)
    assert history.history["hidden_mse"][-1] < history.history["hidden_mse"][0]


def test_subclassed_student_returning_a_dict(data):
    x, y = data

    class Student(keras.Model):
        def __init__(self):
            super().__init__(name="student")
            self.hidden = keras.layers.Dense(4, activation="relu")
            self.head = keras.layers.Dense(C)

        def call(self, inputs, training=None):
            hidden = self.hidden(inputs)
            return {"logits": self.head(hidden), "hidden_states": [hidden]}

    teacher_inputs = keras.Input((D,))
    t_hidden = keras.layers.Dense(6, activation="relu")(teacher_inputs)
    teacher = keras.Model(
        teacher_inputs, {"logits": keras.layers.Dense(C)(t_hidden), "hidden_states": [t_hidden]}
    )
    student = Student()
    distiller = keras_kd.Distiller(student, teacher, feature_losses=["hidden_mse"])
    distiller.compile(optimizer="adam")
    history = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert "hidden_mse" in history.history
    assert len(student.weights) == 4 and len(distiller.feature_losses[0].weights) == 2
    assert distiller.predict(x, verbose=0).shape == (N, C)
    with pytest.raises(
        ValueError, match="`student_features` needs a built Functional or Sequential `student`"
    ):
        keras_kd.Distiller(Student(), teacher, student_features={"hidden": "dense"})


# ---------------------------------------------------------------- multi-teacher
@pytest.mark.parametrize("combine", ["mean_targets", "mean_losses"])
def test_multi_teacher(data, combine):
    x, y = data
    student, t1, t2 = mlp(4, "student"), mlp(6, "t1"), mlp(6, "t2")
    T, weights = 2.0, [3.0, 1.0]
    distiller = keras_kd.Distiller(
        student,
        [t1, t2],
        distillation_loss=kd_losses.KLDivergence(temperature=T),
        teacher_weights=weights,
        multi_teacher=combine,
        alpha=1.0,
    )
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    history = distiller.fit(x, y, batch_size=N, epochs=1, verbose=0)
    log_q = np_log_softmax(student(x), T)
    log_p1, log_p2 = np_log_softmax(t1(x), T), np_log_softmax(t2(x), T)
    if combine == "mean_targets":
        log_mean = np.log(0.75 * np.exp(log_p1) + 0.25 * np.exp(log_p2))
        expected = np_kl(log_mean, log_q, T)
    else:
        expected = 0.75 * np_kl(log_p1, log_q, T) + 0.25 * np_kl(log_p2, log_q, T)
    np.testing.assert_allclose(history.history["distillation_loss"], [expected], rtol=1e-5)

    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    before = snapshot(student.weights + t1.weights + t2.weights)
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    changed = moved(before, student.weights + t1.weights + t2.weights)
    assert all(changed[:4]) and not any(changed[4:])


def test_multi_teacher_arguments_are_validated():
    student, t1, t2 = mlp(4, "student"), mlp(6, "t1"), mlp(6, "t2")
    with pytest.raises(
        ValueError, match=r"`teacher_weights` must hold one weight > 0 per teacher \(2\)"
    ):
        keras_kd.Distiller(student, [t1, t2], teacher_weights=[1.0])
    with pytest.raises(ValueError, match="`multi_teacher` must be one of"):
        keras_kd.Distiller(student, [t1, t2], multi_teacher="vote")
    with pytest.raises(
        ValueError, match="non-empty list of models or None. Received: teacher=\\[\\]"
    ):
        keras_kd.Distiller(student, [])


# ---------------------------------------------------------------- online modes
def test_mutual_mode_trains_both_models(data):
    x, y = data
    student, teacher = mlp(4, "student"), mlp(6, "teacher")
    T, alpha = 1.0, 0.5
    distiller = keras_kd.Distiller(
        student,
        teacher,
        distillation_loss=kd_losses.KLDivergence(temperature=T),
        alpha=alpha,
        mode="mutual",
    )
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    assert teacher.trainable and float(distiller.teacher_optimizer.learning_rate) == pytest.approx(
        0.1
    )
    s_logits, t_logits = np.array(student(x)), np.array(teacher(x))
    before = snapshot(student.weights + teacher.weights)
    history = distiller.fit(x, y, batch_size=N, epochs=1, verbose=0)
    assert all(moved(before, student.weights + teacher.weights))
    assert {
        "loss",
        "student_loss",
        "distillation_loss",
        "teacher_loss",
        "teacher_agreement",
    } <= set(history.history)
    # Deep Mutual Learning: each model learns from the other's (constant) predictions and the labels.
    log_s, log_t = np_log_softmax(s_logits, T), np_log_softmax(t_logits, T)
    student_loss = alpha * np_kl(log_t, log_s, T) + (1 - alpha) * np_ce(s_logits, y)
    teacher_loss = alpha * np_kl(log_s, log_t, T) + (1 - alpha) * np_ce(t_logits, y)
    np.testing.assert_allclose(history.history["loss"], [student_loss], rtol=1e-5)
    np.testing.assert_allclose(history.history["teacher_loss"], [teacher_loss], rtol=1e-5)


def test_mutual_mode_with_two_teachers_logs_each(data):
    x, y = data
    student, t1, t2 = mlp(4, "student"), mlp(6, "t1"), mlp(6, "t2")
    distiller = keras_kd.Distiller(student, [t1, t2], mode="mutual")
    distiller.compile(optimizer="adam")
    before = snapshot(student.weights + t1.weights + t2.weights)
    history = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert all(moved(before, student.weights + t1.weights + t2.weights))
    assert {"teacher_0_loss", "teacher_1_loss"} <= set(history.history)


def test_teacher_guided_mode_fine_tunes_the_teacher_slowly(data):
    x, y = data
    student, teacher = mlp(4, "student"), mlp(6, "teacher")
    distiller = keras_kd.Distiller(student, teacher, mode="teacher_guided")
    distiller.compile(optimizer=keras.optimizers.SGD(0.5))
    assert float(distiller.teacher_optimizer.learning_rate) == pytest.approx(0.05)
    t_logits = np.array(teacher(x))
    t_before, s_before = snapshot(teacher.weights), snapshot(student.weights)
    history = distiller.fit(x, y, batch_size=N, epochs=1, verbose=0)
    assert all(moved(t_before, teacher.weights)) and all(moved(s_before, student.weights))
    # The teacher learns from the labels only.
    np.testing.assert_allclose(history.history["teacher_loss"], [np_ce(t_logits, y)], rtol=1e-5)

    # Same step with a 10x smaller teacher learning rate: the teacher's update is 10x smaller.
    student2, teacher2 = mlp(4, "student"), mlp(6, "teacher")
    teacher2.set_weights([np.array(w) for w in t_before])
    student2.set_weights([np.array(w) for w in s_before])
    other = keras_kd.Distiller(student2, teacher2, mode="teacher_guided", teacher_lr_multiplier=1.0)
    other.compile(optimizer=keras.optimizers.SGD(0.5))
    other.fit(x, y, batch_size=N, epochs=1, verbose=0)
    slow = np.array(teacher.weights[0]) - t_before[0]
    fast = np.array(teacher2.weights[0]) - t_before[0]
    np.testing.assert_allclose(slow, fast / 10, rtol=1e-4, atol=1e-7)


def test_explicit_teacher_optimizer(data):
    student, teacher = mlp(4, "student"), mlp(6, "teacher")
    distiller = keras_kd.Distiller(student, teacher, mode="mutual")
    distiller.compile(optimizer="adam", teacher_optimizer=keras.optimizers.SGD(0.01))
    assert isinstance(distiller.teacher_optimizer, keras.optimizers.SGD)
    frozen = keras_kd.Distiller(mlp(4, "s"), mlp(6, "t"))
    with pytest.raises(
        ValueError, match="`teacher_optimizer` is only used with mode='mutual' or 'teacher_guided'"
    ):
        frozen.compile(optimizer="adam", teacher_optimizer="sgd")


def test_default_mode_keeps_the_teacher_frozen(data):
    x, y = data
    student, teacher = mlp(4, "student"), mlp(6, "teacher")
    distiller = keras_kd.Distiller(student, teacher)
    assert distiller.mode == "distill" and not teacher.trainable
    distiller.compile(optimizer="adam")
    before = snapshot(teacher.weights)
    history = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not any(moved(before, teacher.weights)) and "teacher_loss" not in history.history


def test_mode_arguments_are_validated():
    with pytest.raises(
        ValueError,
        match=r"`mode` must be one of \('distill', 'mutual', 'teacher_guided'\). Received: mode='online'",
    ):
        keras_kd.Distiller(mlp(4, "s"), mlp(6, "t"), mode="online")
    with pytest.raises(
        ValueError, match="`mode='mutual'` trains the teacher, so it needs teacher models"
    ):
        keras_kd.Distiller(mlp(4, "s"), None, mode="mutual")
    with pytest.raises(
        ValueError, match="`teacher_lr_multiplier` must be > 0. Received: teacher_lr_multiplier=0"
    ):
        keras_kd.Distiller(mlp(4, "s"), mlp(6, "t"), mode="teacher_guided", teacher_lr_multiplier=0)


def test_config_round_trip_with_modes():
    student, t1, t2 = (
        mlp(4, "student", hidden_name="s_hidden"),
        mlp(6, "t1", hidden_name="t_hidden"),
        mlp(6, "t2"),
    )
    distiller = keras_kd.Distiller(
        student,
        [t1, t2],
        distillation_loss=kd_losses.DKD(temperature=2.0),
        teacher_weights=[2.0, 1.0],
        multi_teacher="mean_losses",
        mode="teacher_guided",
        feature_losses=[kd_losses.HiddenStateMSE({"h": "h"})],
        student_features={"h": "s_hidden"},
        teacher_features={"h": "t_hidden"},
        teacher_lr_multiplier=0.2,
    )
    config = distiller.get_config()
    restored = keras_kd.Distiller.from_config(config)
    assert len(restored.teachers) == 2 and restored.mode == "teacher_guided"
    assert restored.multi_teacher == "mean_losses" and restored.teacher_weights == [2.0, 1.0]
    assert restored.student_features == {"h": "s_hidden"} and restored.teacher_lr_multiplier == 0.2
    assert isinstance(restored.distillation_loss, kd_losses.DKD)
    assert type(restored.feature_losses[0]) is kd_losses.HiddenStateMSE


# ---------------------------------------------------------------- padding masks and saving
def test_padding_mask_of_the_inputs_reaches_feature_losses(rng):
    L, W = 4, 3

    def sequence_model(name):
        tokens = keras.Input((L, W), name="tokens")
        mask = keras.Input((L,), name="padding_mask")
        hidden = keras.layers.Dense(W, name=f"{name}_hidden")(tokens)
        logits = keras.layers.Dense(C)(keras.layers.GlobalAveragePooling1D()(hidden))
        return keras.Model(
            {"tokens": tokens, "padding_mask": mask}, {"logits": logits, "hidden_states": [hidden]}
        )

    student, teacher = sequence_model("student"), sequence_model("teacher")
    x = {
        "tokens": rng.normal(size=(N, L, W)).astype("float32"),
        "padding_mask": (np.arange(L)[None, :] < rng.integers(1, L + 1, size=(N, 1))).astype(
            "float32"
        ),
    }
    y = rng.integers(0, C, size=N)
    distiller = keras_kd.Distiller(student, teacher, feature_losses=["hidden_mse"])
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    history = distiller.fit(x, y, batch_size=N, epochs=1, verbose=0)
    h_s = np.array(student(x)["hidden_states"][0])
    h_t = np.array(teacher(x)["hidden_states"][0])
    per_position = ((h_s - h_t) ** 2).mean(-1)
    mask = x["padding_mask"]
    expected = ((per_position * mask).sum(-1) / mask.sum(-1)).mean()
    np.testing.assert_allclose(history.history["hidden_mse"], [expected], rtol=1e-5)
    assert not np.isclose(expected, per_position.mean(), rtol=1e-3)  # the mask matters here


def test_saved_distiller_keeps_the_projections(data, tmp_path):
    x, y = data
    student, teacher = (
        mlp(4, "student", hidden_name="s_hidden"),
        mlp(8, "teacher", hidden_name="t_hidden"),
    )
    distiller = keras_kd.Distiller(
        student,
        teacher,
        feature_losses=[kd_losses.HiddenStateMSE({"h": "h"})],
        student_features={"h": "s_hidden"},
        teacher_features={"h": "t_hidden"},
    )
    distiller.compile(optimizer="adam")
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    distiller.save(tmp_path / "distiller.keras")
    restored = keras.models.load_model(tmp_path / "distiller.keras")
    for saved, loaded in zip(
        distiller.feature_losses[0].weights, restored.feature_losses[0].weights, strict=True
    ):
        np.testing.assert_array_equal(np.array(saved), np.array(loaded))
    assert restored.student_features == {"h": "s_hidden"}
    restored.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_feature_loss_names_must_be_distinct():
    with pytest.raises(
        ValueError, match=r"names must be distinct. Received repeated names: \['hidden_mse'\]"
    ):
        keras_kd.Distiller(
            mlp(4, "s"), mlp(6, "t"), feature_losses=["hidden_mse", kd_losses.HiddenStateMSE()]
        )
    terms = [
        kd_losses.HiddenStateMSE({0: 0}, name="h0"),
        kd_losses.HiddenStateMSE({1: 1}, name="h1"),
    ]
    assert [
        t.name
        for t in keras_kd.Distiller(mlp(4, "s"), mlp(6, "t"), feature_losses=terms).feature_losses
    ] == [
        "h0",
        "h1",
    ]


def test_teacher_regularization_counts_in_its_own_loss(data):
    x, y = data
    inputs = keras.Input((D,))
    teacher = keras.Model(
        inputs, keras.layers.Dense(C, kernel_regularizer=keras.regularizers.L2(0.5))(inputs)
    )
    distiller = keras_kd.Distiller(mlp(4, "student"), teacher=teacher, mode="teacher_guided")  # a tiny teacher
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    history = distiller.fit(x, y, batch_size=N, epochs=1, verbose=0)
    kernel = np.array(teacher.weights[0])
    expected = np_ce(np.array(teacher(x)), y) + 0.5 * (kernel**2).sum()
    np.testing.assert_allclose(history.history["teacher_loss"], [expected], rtol=1e-5)


def test_feature_loss_as_distillation_loss_is_refused():
    with pytest.raises(
        TypeError,
        match=r"HiddenStateMSE matches intermediate layers: pass it in `feature_losses=\[...\]`",
    ):
        keras_kd.Distiller(mlp(4, "s"), mlp(6, "t"), distillation_loss="hidden_mse")
