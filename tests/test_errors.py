"""Bad inputs raise a clear Keras-style error before the first training step.

Each test asserts the message; the `fit` cases also assert no step ran (`optimizer.iterations == 0`,
no train function built), so the error came from the checks, not from a crash inside the step.
"""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd import Distiller, validation
from keras_kd._optional import require
from keras_kd.data import keys

NUM_CLASSES = 4


def _mlp(classes=NUM_CLASSES, name=None):
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(classes)],
        name=name,
    )


class _Subclassed(keras.Model):
    """No static output shape: class-count mismatches show only when it runs."""

    def __init__(self, classes, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(classes)

    def call(self, x):
        return self.dense(x)


def _data(n=32, classes=NUM_CLASSES):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, classes, size=(n,)).astype(
        "int32"
    )


def _compiled(teacher=None, student=None, **compile_kwargs):
    distiller = Distiller(student or _mlp(), teacher if teacher is not None else _mlp(), alpha=0.5)
    distiller.compile(optimizer="sgd", **compile_kwargs)
    return distiller


def _assert_fit_refused(distiller, match, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        distiller.fit(*args, verbose=0, **kwargs)
    assert distiller.train_function is None
    assert distiller.optimizer.iterations.numpy() == 0


def _cached(logits, x=None, y=None):
    x = _data(len(logits))[0] if x is None else x
    features = {
        keys.STUDENT_INPUTS: x,
        keys.TEACHER_OUTPUTS: {"logits": np.asarray(logits, "float32")},
    }
    dataset = tf.data.Dataset.from_tensor_slices((features, y) if y is not None else features)
    return dataset.batch(8)


# ---------------------------------------------------------------- teacher vs student
def test_class_count_mismatch_at_construction():
    with pytest.raises(
        ValueError,
        match=r"same number of classes\)\. Received: teacher logits shape=\(None, 5\), student logits shape=\(None, 4\)",
    ):
        Distiller(_mlp(), _mlp(5))


def test_class_count_mismatch_of_subclassed_models_found_on_first_batch():
    distiller = _compiled(teacher=_Subclassed(5), student=_Subclassed(4))
    x, y = _data()
    _assert_fit_refused(
        distiller,
        r"same number of classes\)\. Received: teacher logits shape=\(None, 5\), student logits shape=\(None, 4\)",
        x,
        y,
    )


def test_cached_teacher_outputs_with_other_class_count():
    distiller = Distiller(_mlp(), teacher=None)
    distiller.compile(optimizer="sgd")
    _assert_fit_refused(
        distiller,
        r"teacher logits shape=\(None, 3\), student logits shape=\(None, 4\)",
        _cached(np.zeros((16, 3))),
    )


def test_student_without_logits_output():
    inputs = keras.Input((6,))
    student = keras.Model(inputs, {"hidden": keras.layers.Dense(4)(inputs)})
    distiller = _compiled(student=student)
    x, y = _data()
    _assert_fit_refused(
        distiller,
        r"The student must return logits \(a tensor\) or a dict with a 'logits' key\. Received a dict with keys \['hidden'\]",
        x,
        y,
    )


def test_no_teacher_and_no_cached_outputs():
    distiller = Distiller(_mlp(), teacher=None)
    distiller.compile(optimizer="sgd")
    x, y = _data()
    _assert_fit_refused(
        distiller,
        r"has no teacher \(`teacher=None`\), so every batch must carry precomputed teacher outputs",
        x,
        y,
    )


# ---------------------------------------------------------------- labels
@pytest.mark.parametrize(
    "labels, match",
    [
        (
            np.full(32, 0.5, "float32"),
            r"expects integer class ids\. Received float labels with non-integer values \(e\.g\. np\.float32\(0\.5\)\)",
        ),
        (
            np.array(["pos", "neg"] * 16),
            r"expects integer class ids\. Received labels of dtype <U3 \(e\.g\. np\.str_\('pos'\)\): map the class names to ids 0\.\.3",
        ),
        (
            np.eye(NUM_CLASSES, dtype="float32")[np.arange(32) % NUM_CLASSES],
            r"labels look one-hot: shape \(8, 4\), one column per class",
        ),
        (
            np.full(32, NUM_CLASSES, "int32"),
            r"Labels must be class ids in \[0, 4\) for a student with 4 logits\. Received a label np\.int32\(4\)",
        ),
        (
            np.full(32, -1, "int32"),
            r"Labels must be class ids in \[0, 4\) .* Received a label np\.int32\(-1\)",
        ),
    ],
    ids=["float", "string", "one_hot", "too_large", "negative"],
)
def test_labels_that_do_not_fit_sparse_crossentropy(labels, match):
    x, _ = _data()
    _assert_fit_refused(_compiled(), match, x, labels, batch_size=8)


def test_labels_of_a_dataset_are_checked_too():
    x, _ = _data()
    dataset = tf.data.Dataset.from_tensor_slices((x, np.full(32, 9, "int64"))).batch(8)
    _assert_fit_refused(_compiled(), r"Received a label np\.int64\(9\) in the first batch", dataset)


def test_one_hot_width_mismatch_for_categorical_crossentropy():
    x, _ = _data()
    labels = np.eye(3, dtype="float32")[np.arange(32) % 3]
    distiller = _compiled(loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    _assert_fit_refused(
        distiller,
        r"`CategoricalCrossentropy` expects one-hot \(or soft\) labels with 4 columns.*Received labels of shape \(8, 3\)",
        x,
        labels,
    )


def test_validation_data_is_checked_before_training():
    x, y = _data()
    _assert_fit_refused(
        _compiled(),
        r"Received a label np\.int32\(7\)",
        x,
        y,
        validation_data=(x, np.full(32, 7, "int32")),
    )


def test_first_batch_checks_run_once_per_fit_not_per_validation_pass(monkeypatch):
    """`fit` checks `x` and `validation_data` before training; its per-epoch validation passes
    (`evaluate` inside `fit`) do not check again; a standalone `evaluate` does."""
    x, y = _data()
    calls = []
    check = validation.check_first_batch
    monkeypatch.setattr(
        validation, "check_first_batch", lambda *a, **k: (calls.append(k.get("name", "x")), check(*a, **k))[1]
    )
    distiller = _compiled()
    distiller.fit(x, y, validation_data=(x, y), batch_size=8, epochs=3, verbose=0)
    assert calls == ["x", "validation_data"]
    distiller.evaluate(x, y, verbose=0)
    assert calls == ["x", "validation_data", "x"]


def test_ignore_class_labels_are_allowed():
    x, y = _data()
    y[:4] = -1
    distiller = _compiled(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    )
    validation.check_first_batch(distiller, x, y)  # no error


# ---------------------------------------------------------------- data
def test_empty_dataset():
    x, y = _data()
    empty = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: b > 100).batch(8)
    _assert_fit_refused(
        _compiled(), r"`x` is empty: it yields no batch, so there is nothing to distill", empty
    )


def test_empty_arrays():
    _assert_fit_refused(
        _compiled(), r"`x` is empty", np.zeros((0, 6), "float32"), np.zeros((0,), "int32")
    )


def test_empty_validation_dataset():
    x, y = _data()
    empty = tf.data.Dataset.from_tensor_slices((x, y)).take(0).batch(8)
    _assert_fit_refused(_compiled(), r"`validation_data` is empty", x, y, validation_data=empty)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_cached_teacher_outputs(bad):
    logits = np.random.default_rng(1).normal(size=(16, NUM_CLASSES)).astype("float32")
    logits[3, 1] = bad
    distiller = Distiller(_mlp(), teacher=None)
    distiller.compile(optimizer="sgd")
    _assert_fit_refused(
        distiller,
        r"Cached teacher outputs hold 1 NaN/Inf value\(s\) in x\['teacher_outputs'\]\['logits'\] of the first batch",
        _cached(logits, y=np.zeros(16, "int32")),
    )


def _token_student(vocabulary=50):
    return keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            keras.layers.Embedding(vocabulary, 4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(NUM_CLASSES),
        ]
    )


def test_token_ids_beyond_the_student_vocabulary():
    tokens = np.random.default_rng(0).integers(0, 120, size=(16, 5)).astype("int32")
    tokens[0, 0] = 119
    distiller = Distiller(_token_student(50), _token_student(200), alpha=0.5)
    distiller.compile(optimizer="sgd")
    _assert_fit_refused(
        distiller,
        r"holds token id 119, but the student's largest embedding table has 50 rows \(`input_dim`\): the tokenizer's vocabulary does not match the student",
        tokens,
        np.zeros(16, "int32"),
    )


def test_tokenizer_vocabulary_larger_than_the_embedding():
    from keras_kd.data.text import CharTokenizer

    with pytest.raises(
        ValueError,
        match=r"The tokenizer has a vocabulary of 1000 tokens but the student's largest embedding table has 50 rows",
    ):
        validation.check_vocabulary(CharTokenizer(vocabulary_size=1000), _token_student(50))
    validation.check_vocabulary(50, _token_student(50))  # equal sizes are fine


def test_a_student_that_hashes_its_ids_takes_any_token_id():
    """An n-gram-bag student hashes token ids into its buckets before its Embedding: ids beyond the
    Embedding's rows are valid input, for the first-batch checks and the in-graph ones (XLA too)."""
    from keras_kd.models.ngram import build_ngram_bag

    student = build_ngram_bag(vocabulary_size=8192, sequence_length=5, num_classes=NUM_CLASSES, buckets=64)
    assert validation.token_id_limit(student) is None
    assert validation.token_id_limit(_token_student(50)) == 50
    assert validation.token_id_limit(_mlp()) is None  # no Embedding
    validation.check_vocabulary(8192, student)
    tokens = np.random.default_rng(0).integers(1, 8192, size=(32, 5)).astype("int32")
    assert tokens.max() >= 64
    for jit_compile in (False, True):
        distiller = Distiller(student, _token_student(8192), alpha=0.5)
        distiller.compile(optimizer="sgd", jit_compile=jit_compile)
        distiller.fit(tokens, np.zeros(32, "int32"), batch_size=8, epochs=1, verbose=0)
        assert int(distiller.optimizer.iterations.numpy()) == 4  # no step was refused


# ---------------------------------------------------------------- hyper-parameters and names
@pytest.mark.parametrize("temperature", [0, -1.5])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(
        ValueError, match=rf"`temperature` must be > 0\. Received: temperature={temperature}"
    ):
        Distiller(
            _mlp(), _mlp(), distillation_loss=keras_kd.losses.KLDivergence(temperature=temperature)
        )


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_must_be_in_unit_interval(alpha):
    with pytest.raises(ValueError, match=rf"`alpha` must be in \[0, 1\]\. Received: alpha={alpha}"):
        Distiller(_mlp(), _mlp(), alpha=alpha)


def test_unknown_distillation_loss_name():
    with pytest.raises(
        ValueError, match=r"Unknown distillation loss: 'kll'\. Valid names: .*\bkl\b"
    ):
        Distiller(_mlp(), _mlp(), distillation_loss="kll")


def test_unknown_strategy_name():
    from keras_kd.distribute import get_strategy

    with pytest.raises(
        ValueError,
        match=r"Unknown strategy: 'gpu'\. Valid names: auto, default, mirrored, multi_worker, tpu",
    ):
        get_strategy("gpu")


# ---------------------------------------------------------------- optional dependencies
def test_missing_optional_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # makes `import keras_hub` fail
    with pytest.raises(
        ImportError,
        match=r'`keras_hub` is required by KerasHubTeacher but is not installed\. Install it with: pip install "keras-kd\[hub\]"',
    ):
        require("keras_hub", feature="KerasHubTeacher")
    with pytest.raises(ImportError, match=r'Install it with: pip install "keras-kd\[plots\]"'):
        require("not_a_module_kd", extra="plots")
    assert require("numpy") is np


# ---------------------------------------------------------------- configs and saved files
def _write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_malformed_yaml(tmp_path):
    from keras_kd.cli.config import load_config

    with pytest.raises(ValueError, match=r"run\.yaml is not valid YAML: "):
        load_config(_write(tmp_path, "teacher: {builder: mlp\nstudent: [\n"))


def test_yaml_with_python_tags_is_refused(tmp_path):
    from keras_kd.cli.config import load_config

    text = "teacher: !!python/object/apply:os.system ['echo pwned']\nstudent: {builder: mlp}\ndata: {dataset: mnist_5k}\n"
    with pytest.raises(
        ValueError,
        match=r"keras-kd reads configs with `yaml\.safe_load`, which never builds Python objects",
    ):
        load_config(_write(tmp_path, text))


def test_unknown_config_key(tmp_path):
    from keras_kd.cli.config import load_config

    text = "teacher: {builder: mlp}\nstudent: {builder: mlp}\ndata: {dataset: mnist_5k}\ntraning: {epochs: 2}\n"
    with pytest.raises(ValueError, match=r"Unknown key `traning`.*Valid keys: .*training"):
        load_config(_write(tmp_path, text))


def test_keras_file_with_lambda_layer_is_refused_under_safe_mode(tmp_path):
    inputs = keras.Input((6,))
    model = keras.Model(
        inputs, keras.layers.Lambda(lambda t: t * 2.0)(keras.layers.Dense(NUM_CLASSES)(inputs))
    )
    path = tmp_path / "teacher.keras"
    model.save(path)
    with pytest.raises(
        ValueError, match=r"Requested the deserialization of a `?Lambda`? layer.*safe_mode"
    ):
        keras.saving.load_model(path)  # safe_mode=True is the default: no code runs


def test_cache_built_for_another_teacher_is_refused(tmp_path):
    from keras_kd.data import cache_teacher_outputs

    x, y = _data(16)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    path = tmp_path / "cache"
    cache_teacher_outputs(_mlp(name="teacher_a"), dataset, path=path)
    with pytest.raises(ValueError, match=r"teacher"):
        cache_teacher_outputs(_mlp(name="teacher_b"), dataset, path=path)


def test_cache_built_for_another_dataset_is_refused(tmp_path):
    from keras_kd.data import cache_teacher_outputs

    x, y = _data(16)
    teacher = _mlp(name="teacher_a")
    path = tmp_path / "cache"
    cache_teacher_outputs(teacher, tf.data.Dataset.from_tensor_slices((x, y)).batch(8), path=path)
    with pytest.raises(ValueError, match=r"dataset"):
        cache_teacher_outputs(
            teacher, tf.data.Dataset.from_tensor_slices((x + 1.0, y)).batch(8), path=path
        )


def test_checks_can_be_turned_off():
    x, _ = _data()
    labels = np.full(32, 0.5, "float32")  # would be refused by the checks; Keras truncates it to 0
    by_attribute = _compiled()
    by_attribute.check_values = False  # the in-graph checks (tests/test_checks.py) would skip every step
    # the argument that the checks' error message names
    by_argument = Distiller(_mlp(name="student"), _mlp(name="teacher"), alpha=0.5, check_values=False)
    by_argument.compile(optimizer="adam")
    assert by_argument.get_config()["check_values"] is False
    assert Distiller.from_config(by_argument.get_config()).check_values is False
    for distiller in (by_attribute, by_argument):
        distiller.check_first_batch = False
        distiller.fit(x, labels, batch_size=8, epochs=1, verbose=0)
        assert distiller.optimizer.iterations.numpy() == 4
    with pytest.raises(TypeError, match=r"`check_values` must be True or False. Received: check_values='no'"):
        Distiller(_mlp(name="student"), _mlp(name="teacher"), check_values="no")


# ---------------------------------------------------------------- non-logit students, shared layers
def _softmax_mlp(name=None):
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name=name,
    )


def test_student_ending_in_softmax_is_refused():
    x, y = _data()
    _assert_fit_refused(
        _compiled(student=_softmax_mlp()),
        r"The student's outputs look like probabilities, not logits: every row of the first batch is >= 0 and sums to 1 .*Remove the final softmax",
        x,
        y,
    )


def test_teacher_ending_in_softmax_warns():
    x, y = _data()
    distiller = _compiled(teacher=_softmax_mlp())
    with pytest.warns(
        UserWarning, match=r"The teacher's outputs look like probabilities, not logits"
    ):
        validation.check_first_batch(distiller, x, y)


@pytest.mark.parametrize(
    "loss, name",
    [
        (keras.losses.SparseCategoricalCrossentropy(), "SparseCategoricalCrossentropy"),
        ("sparse_categorical_crossentropy", "'sparse_categorical_crossentropy'"),
    ],
    ids=["object", "string"],
)
def test_loss_without_from_logits_is_refused(loss, name):
    x, y = _data()
    _assert_fit_refused(
        _compiled(loss=loss),
        rf"`loss` must take logits: .* compile\(loss={name}\) has from_logits=False.*SparseCategoricalCrossentropy\(from_logits=True\)",
        x,
        y,
    )


def test_categorical_loss_without_from_logits_is_refused():
    x, y = _data()
    one_hot = np.eye(NUM_CLASSES, dtype="float32")[y]
    _assert_fit_refused(
        _compiled(loss=keras.losses.CategoricalCrossentropy()),
        r"compile\(loss=CategoricalCrossentropy\) has from_logits=False.*keras\.losses\.CategoricalCrossentropy\(from_logits=True\)",
        x,
        one_hot,
    )


def _sharing_models():
    shared = keras.layers.Dense(8, activation="relu", name="shared_dense")
    inputs = keras.Input((6,))
    teacher = keras.Model(
        inputs, keras.layers.Dense(NUM_CLASSES, name="t_head")(shared(inputs)), name="teacher"
    )
    inputs = keras.Input((6,))
    student = keras.Model(
        inputs, keras.layers.Dense(NUM_CLASSES, name="s_head")(shared(inputs)), name="student"
    )
    return teacher, student


def test_layer_shared_by_teacher_and_student_is_refused():
    teacher, student = _sharing_models()
    x, y = _data()
    _assert_fit_refused(
        _compiled(teacher=teacher, student=student),
        r"Teacher and student share the layer\(s\) \['shared_dense'\]: the Distiller freezes the teacher, which silently freezes these layers in the student",
        x,
        y,
    )


def test_layer_shared_in_mutual_mode_warns():
    teacher, student = _sharing_models()
    x, y = _data()
    distiller = Distiller(student, teacher, mode="mutual")
    distiller.compile(optimizer="sgd")
    with pytest.warns(
        UserWarning,
        match=r"share the layer\(s\) \['shared_dense'\]: in mode='mutual' both optimizers",
    ):
        validation.check_first_batch(distiller, x, y)


def test_unlabelled_batches_with_compiled_metrics():
    x, _ = _data()
    distiller = _compiled(metrics=["accuracy"])
    history = distiller.fit(
        x, batch_size=8, epochs=1, verbose=0
    )  # no labels: distillation term only
    assert "accuracy" not in history.history
    assert np.isfinite(history.history["distillation_loss"][0])
    assert distiller.optimizer.iterations.numpy() == 4
