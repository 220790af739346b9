"""Cached teacher outputs: same training as online KD, zero teacher calls, top-k bound, disk round trip."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.data import cache, keys
from keras_kd.losses import functional


class CallCounter(keras.layers.Layer):
    """Identity that counts real executions (a variable, so tf.function tracing does not count)."""

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

    def call(self, x):
        self.calls.assign_add(1.0)
        return x


def make_teacher(seed=1, counter=None, classes=5):
    inputs = keras.Input((8,))
    h = counter(inputs) if counter is not None else inputs
    h = keras.layers.Dense(
        16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(h)
    outputs = keras.layers.Dense(
        classes, kernel_initializer=keras.initializers.GlorotUniform(seed + 1)
    )(h)
    return keras.Model(inputs, outputs, name=f"teacher_{seed}")


def make_student(classes=5):
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(classes, kernel_initializer=keras.initializers.GlorotUniform(7))(
        inputs
    )
    return keras.Model(inputs, outputs, name="student")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 5, size=64).astype("int32")
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _fit(teacher, dataset, epochs=2):
    distiller = keras_kd.Distiller(make_student(), teacher=teacher, alpha=0.7)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    history = distiller.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
    return history.history, distiller.student.get_weights()


def test_cached_training_matches_online(data):
    _, _, dataset = data
    teacher = make_teacher()
    online, online_weights = _fit(teacher, dataset)
    cached_ds = cache.cache_teacher_outputs(teacher, dataset, verbose=0)
    cached, cached_weights = _fit(None, cached_ds)
    for name in ("loss", "distillation_loss", "student_loss", "teacher_agreement"):
        np.testing.assert_allclose(cached[name], online[name], atol=1e-5, rtol=0, err_msg=name)
    for a, b in zip(cached_weights, online_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_teacher_is_called_zero_times_on_cached_data(data):
    _, _, dataset = data
    counter = CallCounter()
    teacher = make_teacher(counter=counter)
    cached_ds = cache.cache_teacher_outputs(teacher, dataset, verbose=0)
    assert float(counter.calls.numpy()) == 4  # one call per batch, once
    _fit(None, cached_ds, epochs=3)
    _fit(teacher, cached_ds, epochs=3)  # even with a teacher attached, cached outputs win
    assert float(counter.calls.numpy()) == 4
    _fit(teacher, dataset, epochs=1)  # sanity: the counter does count online calls
    assert float(counter.calls.numpy()) > 4


def test_cached_batches_hold_the_teacher_logits(data):
    x, y, dataset = data
    teacher = make_teacher()
    batches = list(cache.cache_teacher_outputs(teacher, dataset, verbose=0))
    assert len(batches) == 4
    bx, by = batches[1]
    assert set(bx) == {keys.STUDENT_INPUTS, keys.TEACHER_OUTPUTS}
    np.testing.assert_array_equal(bx[keys.STUDENT_INPUTS], x[16:32])
    np.testing.assert_array_equal(by, y[16:32])
    np.testing.assert_allclose(
        bx[keys.TEACHER_OUTPUTS]["logits"], teacher.predict(x[16:32], verbose=0), atol=1e-6
    )


def test_shuffle_after_caching_keeps_alignment(data):
    x, _, dataset = data
    teacher = make_teacher()
    shuffled = cache.cache_teacher_outputs(
        teacher, dataset, shuffle=True, seed=3, batch_size=10, verbose=0
    )
    first_epoch = np.concatenate([b[0][keys.STUDENT_INPUTS] for b in shuffled])
    second_epoch = np.concatenate([b[0][keys.STUDENT_INPUTS] for b in shuffled])
    assert not np.array_equal(first_epoch, x) and not np.array_equal(first_epoch, second_epoch)
    for bx, _ in shuffled:
        assert bx[keys.STUDENT_INPUTS].shape[0] <= 10
        expected = teacher.predict(bx[keys.STUDENT_INPUTS], verbose=0)
        np.testing.assert_allclose(bx[keys.TEACHER_OUTPUTS]["logits"], expected, atol=1e-6)


def test_separate_views_and_sample_weight():
    rng = np.random.default_rng(1)
    teacher_x = rng.normal(size=(20, 8)).astype("float32")
    student_x = rng.normal(size=(20, 3)).astype("float32")
    w = rng.uniform(size=20).astype("float32")
    source = tf.data.Dataset.from_tensor_slices(
        ({keys.TEACHER_INPUTS: teacher_x, keys.STUDENT_INPUTS: student_x}, np.zeros(20, "int32"), w)
    ).batch(8)
    teacher = make_teacher()
    (bx, by, bw), *_ = list(cache.cache_teacher_outputs(teacher, source, verbose=0))
    np.testing.assert_array_equal(
        bx[keys.STUDENT_INPUTS], student_x[:8]
    )  # the cache keeps the student's view
    assert keys.TEACHER_INPUTS not in bx
    np.testing.assert_allclose(
        bx[keys.TEACHER_OUTPUTS]["logits"], teacher.predict(teacher_x[:8], verbose=0), atol=1e-6
    )
    np.testing.assert_array_equal(bw, w[:8])


def test_disk_round_trip_without_teacher(data, tmp_path):
    _, _, dataset = data
    teacher = make_teacher()
    path = tmp_path / "cache"
    built = list(cache.cache_teacher_outputs(teacher, dataset, path=path, verbose=0))
    manifest = json.loads((path / "manifest.json").read_text())
    assert (
        manifest["teacher"]["name"] == "teacher_1"
        and manifest["teacher"]["num_params"] == 8 * 16 + 16 + 16 * 5 + 5
    )
    assert manifest["dataset"]["cardinality"] == 4 and manifest["num_examples"] == 64
    assert (
        manifest["outputs"] == ["logits"]
        and manifest["dtype"] == "float32"
        and manifest["top_k"] is None
    )
    reloaded = list(cache.cache_teacher_outputs(None, dataset, path=path, verbose=0))
    assert len(reloaded) == len(built)
    for (a, ya), (b, yb) in zip(built, reloaded, strict=True):
        np.testing.assert_array_equal(
            a[keys.TEACHER_OUTPUTS]["logits"], b[keys.TEACHER_OUTPUTS]["logits"]
        )
        np.testing.assert_array_equal(a[keys.STUDENT_INPUTS], b[keys.STUDENT_INPUTS])
        np.testing.assert_array_equal(ya, yb)
    again = list(cache.load_cached_teacher_outputs(path))
    np.testing.assert_array_equal(again[0][1], built[0][1])
    # The same teacher is accepted; another teacher or dataset is refused.
    list(cache.cache_teacher_outputs(teacher, dataset, path=path, verbose=0))
    with pytest.raises(
        ValueError,
        match=r"was built for teacher 'teacher_1'.*not for the teacher passed: 'teacher_2'",
    ):
        cache.cache_teacher_outputs(make_teacher(seed=2), dataset, path=path, verbose=0)
    with pytest.raises(
        ValueError, match=r"built for a different dataset \(first_batch_sha256 differs"
    ):
        cache.cache_teacher_outputs(
            teacher, dataset.map(lambda x, y: (x + 1.0, y)), path=path, verbose=0
        )
    with pytest.raises(ValueError, match=r"holds dtype='float32', not dtype='float16'"):
        cache.cache_teacher_outputs(teacher, dataset, path=path, dtype="float16", verbose=0)
    cache.cache_teacher_outputs(make_teacher(seed=2), dataset, path=path, overwrite=True, verbose=0)
    assert json.loads((path / "manifest.json").read_text())["teacher"]["name"] == "teacher_2"


def test_float16_storage(data, tmp_path):
    x, _, dataset = data
    teacher = make_teacher()
    batches = list(
        cache.cache_teacher_outputs(
            teacher, dataset, dtype="float16", path=tmp_path / "c16", verbose=0
        )
    )
    logits = np.concatenate([b[0][keys.TEACHER_OUTPUTS]["logits"] for b in batches])
    assert logits.dtype == np.float32  # cast back when read
    reference = teacher.predict(x, verbose=0)
    np.testing.assert_allclose(logits, reference, rtol=2**-11, atol=1e-6)
    assert not np.array_equal(logits, reference)


def test_top_k_reconstruction_bound():
    rng = np.random.default_rng(0)
    n, k = 1000, 20
    teacher_logits = (rng.normal(size=(32, n)) * 3.0).astype("float32")
    student_logits = rng.normal(size=(32, n)).astype("float32")
    for temperature in (1.0, 4.0):
        compressed = cache.compress_top_k(teacher_logits, k, temperature=temperature)
        dense = cache.expand_top_k(compressed, n).numpy()
        p = tf.nn.softmax(teacher_logits / temperature).numpy()
        p_hat = tf.nn.softmax(dense / temperature).numpy()
        top = compressed["top_k_indices"].numpy()
        np.testing.assert_allclose(
            np.take_along_axis(p_hat, top, -1), np.take_along_axis(p, top, -1), rtol=1e-4
        )
        rest = np.ones_like(p, dtype=bool)
        np.put_along_axis(rest, top, False, axis=-1)
        mass = (p * rest).sum(-1)
        np.testing.assert_allclose(
            (p_hat * rest).sum(-1), mass, rtol=1e-4
        )  # tail mass kept exactly
        full = functional.kl_divergence(teacher_logits, student_logits, temperature).numpy()
        approx = functional.kl_divergence(dense, student_logits, temperature).numpy()
        log_q = tf.nn.log_softmax(student_logits / temperature).numpy()
        log_q_rest = np.where(rest, log_q, np.nan)
        spread = np.nanmax(log_q_rest, -1) - np.nanmin(log_q_rest, -1)
        bound = temperature**2 * mass * (np.log(n - k) + spread)
        assert np.all(np.abs(full - approx) <= bound + 1e-4)
        assert np.abs(full - approx).max() > 0  # the approximation is not trivially exact here
    # A peaked teacher (little tail mass) gives a tiny error.
    peaked = teacher_logits * 4.0
    dense = cache.expand_top_k(cache.compress_top_k(peaked, k), n)
    full = functional.kl_divergence(peaked, student_logits).numpy()
    err = np.abs(full - functional.kl_divergence(dense, student_logits).numpy())
    assert (err / full).max() < 2e-3  # tail mass ~1e-3 -> relative error ~1e-3


def test_top_k_cache_trains_like_dense_when_tail_is_small(data, tmp_path):
    _, _, dataset = data
    teacher = make_teacher(classes=5)
    top = list(
        cache.cache_teacher_outputs(teacher, dataset, top_k=4, path=tmp_path / "tk", verbose=0)
    )
    dense = list(cache.cache_teacher_outputs(teacher, dataset, verbose=0))
    a, b = top[0][0][keys.TEACHER_OUTPUTS]["logits"], dense[0][0][keys.TEACHER_OUTPUTS]["logits"]
    assert a.shape == b.shape == (16, 5)
    # k = n - 1: the single remaining logit is exact.
    np.testing.assert_allclose(a, b, atol=1e-5)
    manifest = json.loads((tmp_path / "tk" / "manifest.json").read_text())
    assert manifest["top_k"] == 4 and manifest["num_classes"] == 5
    reloaded = list(cache.load_cached_teacher_outputs(tmp_path / "tk"))
    np.testing.assert_allclose(reloaded[0][0][keys.TEACHER_OUTPUTS]["logits"], b, atol=1e-5)
    _fit(None, cache.load_cached_teacher_outputs(tmp_path / "tk"), epochs=1)


def test_with_teacher_outputs_from_numpy(data):
    x, y, dataset = data
    teacher = make_teacher()
    logits = teacher.predict(x, verbose=0)  # stands in for any other framework's outputs
    from_numpy = cache.with_teacher_outputs(x, logits, y, batch_size=16)
    online, _ = _fit(teacher, dataset, epochs=1)
    offline, _ = _fit(None, from_numpy, epochs=1)
    np.testing.assert_allclose(offline["loss"], online["loss"], atol=1e-5)
    with pytest.raises(
        ValueError, match=r"must have one row per example of `x`. Received: 64 examples and 10 rows"
    ):
        cache.with_teacher_outputs(x, logits[:10], y)


def test_errors(data):
    x, y, dataset = data
    teacher = make_teacher()
    broken = keras.Sequential(
        [keras.Input((8,)), keras.layers.Lambda(lambda t: t / (t - t))]
    )  # 0/0 = NaN
    with pytest.raises(
        ValueError, match=r"Teacher output 'logits' has 128 NaN/Inf values in batch 0"
    ):
        cache.cache_teacher_outputs(broken, dataset, verbose=0)
    huge = keras.Sequential([keras.Input((8,)), keras.layers.Lambda(lambda t: t * 0.0 + 1e6)])
    with pytest.raises(ValueError, match=r"after casting to float16"):
        cache.cache_teacher_outputs(huge, dataset, dtype="float16", verbose=0)
    with pytest.raises(
        ValueError, match=r"`dtype` must be one of \('float16', 'float32'\). Received: dtype='int8'"
    ):
        cache.cache_teacher_outputs(teacher, dataset, dtype="int8")
    with pytest.raises(
        ValueError,
        match=r"The teacher has no output 'hidden_states'. Available outputs: \['logits'\]",
    ):
        cache.cache_teacher_outputs(
            teacher, dataset, outputs=("logits", "hidden_states"), verbose=0
        )
    with pytest.raises(ValueError, match=r"`top_k` must be an integer in \[1, 4\]"):
        cache.cache_teacher_outputs(teacher, dataset, top_k=5, verbose=0)
    with pytest.raises(ValueError, match="`teacher` is None and there is no `path`"):
        cache.cache_teacher_outputs(None, dataset)
    with pytest.raises(TypeError, match="`dataset` must be a batched tf.data.Dataset"):
        cache.cache_teacher_outputs(teacher, (x, y))
    with pytest.raises(ValueError, match="This Distiller has no teacher"):
        _fit(None, dataset, epochs=1)


def test_dict_outputs_with_hidden_states():
    inputs = keras.Input((8,))
    h1 = keras.layers.Dense(6)(inputs)
    h2 = keras.layers.Dense(4)(h1)
    logits = keras.layers.Dense(3)(h2)
    teacher = keras.Model(inputs, {"logits": logits, "hidden_states": [h1, h2]})
    x = np.random.default_rng(2).normal(size=(10, 8)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    (bx,), *_ = [
        (b,)
        for b in cache.cache_teacher_outputs(
            teacher, ds, outputs=("logits", "hidden_states"), verbose=0
        )
    ]
    hidden = bx[keys.TEACHER_OUTPUTS]["hidden_states"]
    assert [tuple(h.shape) for h in hidden] == [(4, 6), (4, 4)]
    np.testing.assert_allclose(
        hidden[1], teacher.predict(x[:4], verbose=0)["hidden_states"][1], atol=1e-6
    )


def test_top_k_on_sequence_logits():
    logits = np.random.default_rng(5).normal(size=(2, 3, 50)).astype("float32")
    compressed = cache.compress_top_k(logits, 5, temperature=2.0)
    assert compressed["top_k_values"].shape == (2, 3, 5) and compressed["rest_fill"].shape == (2, 3)
    dense = cache.expand_top_k(compressed, 50)
    assert dense.shape == (2, 3, 50)
    top = np.argsort(-logits, axis=-1)[..., :5]
    np.testing.assert_allclose(
        np.take_along_axis(dense.numpy(), top, -1), np.take_along_axis(logits, top, -1)
    )
    rest_mass = np.exp(logits / 2.0).sum(-1) - np.exp(
        np.take_along_axis(logits, top, -1) / 2.0
    ).sum(-1)
    np.testing.assert_allclose(
        45 * np.exp(compressed["rest_fill"].numpy() / 2.0), rest_mass, rtol=1e-4
    )
