"""The sharded on-disk cache: manifest and checksums, resume, parallel reads, K augmented views,
several caches for several teachers, and a clear error for every way a cache can be wrong."""

import hashlib
import json
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.data import cache, keys

BATCH = 16


def make_teacher(seed=1, classes=5, extra=None):
    inputs = keras.Input((8,))
    h = inputs if extra is None else extra(inputs)
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
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


def _arrays(dataset):
    """(student inputs, teacher logits, labels) of a whole cached dataset, concatenated."""
    xs, ts, ys = [], [], []
    for x, y in dataset:
        xs.append(x[keys.STUDENT_INPUTS].numpy())
        ts.append(x[keys.TEACHER_OUTPUTS]["logits"].numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ts), np.concatenate(ys)


class CountingTeacher:
    """A callable teacher that counts its calls and can crash at a given call (a killed run)."""

    def __init__(self, model, crash_at=None, delay=0.0):
        self.model = model
        self._calls, self._crash_at, self._delay = 0, crash_at, delay  # private: not fingerprinted

    def __call__(self, x):
        time.sleep(self._delay)
        self._calls += 1
        if self._crash_at is not None and self._calls >= self._crash_at:
            raise KeyboardInterrupt("simulated kill")
        return self.model(x, training=False)


def test_manifest_lists_every_shard_with_count_and_checksum(data, tmp_path):
    x, y, dataset = data
    teacher = make_teacher()
    path = tmp_path / "cache"
    cached = cache.cache_teacher_outputs(
        teacher, dataset, path=path, shard_size=2 * BATCH, verbose=0
    )
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["complete"] and manifest["format_version"] == 2
    assert [s["file"] for s in manifest["shards"]] == [
        "shard-00000.tfrecord",
        "shard-00001.tfrecord",
    ]
    assert [s["num_examples"] for s in manifest["shards"]] == [32, 32]
    assert [s["num_batches"] for s in manifest["shards"]] == [2, 2]
    for shard in manifest["shards"]:
        digest = hashlib.sha256((path / shard["file"]).read_bytes()).hexdigest()
        assert shard["sha256"] == digest
    assert sorted(p.name for p in path.iterdir()) == [
        "manifest.json",
        "shard-00000.tfrecord",
        "shard-00001.tfrecord",
    ]
    # Each shard is a plain TFRecord file of tf.train.Examples: readable by any tool.
    records = list(tf.data.TFRecordDataset(str(path / "shard-00001.tfrecord")))
    assert len(records) == 32
    tf.train.Example.FromString(records[0].numpy())
    # The rows read back bit-exactly, in order.
    sx, st, sy = _arrays(cached)
    np.testing.assert_array_equal(sx, x)
    np.testing.assert_array_equal(sy, y)
    np.testing.assert_array_equal(
        st, _arrays(cache.cache_teacher_outputs(teacher, dataset, verbose=0))[1]
    )
    np.testing.assert_allclose(st, teacher.predict(x, verbose=0), atol=1e-6)
    assert int(cached.cardinality()) == 4


def test_resume_after_a_killed_run_keeps_finished_shards(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(96, 8)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.arange(96, dtype="int32"))).batch(BATCH)
    model = make_teacher()

    def flip(batch, seed):  # an augmentation taking a seed: called with one seed per (batch, view)
        flipped = tf.image.stateless_random_flip_left_right(batch[..., None], seed=[seed, 0])
        return flipped[..., 0] + tf.random.stateless_normal(tf.shape(batch), seed=[seed, 1]) * 0.1

    options = dict(views=2, augmentation=flip, seed=11, shard_size=2 * BATCH * 2, verbose=0)

    reference = cache.cache_teacher_outputs(
        CountingTeacher(model), dataset, path=tmp_path / "reference", **options
    )
    crashing = CountingTeacher(
        model, crash_at=6 * 2 // 2 + 1
    )  # dies in batch 3 (2 views per batch)
    with pytest.raises(KeyboardInterrupt):
        cache.cache_teacher_outputs(crashing, dataset, path=tmp_path / "resumed", **options)
    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 1  # batches 0-1 finished
    assert not list((tmp_path / "resumed").glob("*.partial"))  # the unfinished shard is removed
    with pytest.raises(ValueError, match=r"is incomplete: .*manifest.json lists 1 finished shard"):
        cache.load_cached_teacher_outputs(tmp_path / "resumed")

    teacher = CountingTeacher(model)
    resumed = cache.cache_teacher_outputs(teacher, dataset, path=tmp_path / "resumed", **options)
    assert teacher._calls == (6 - 2) * 2  # only the 4 unfinished batches, 2 views each
    a, b = _arrays(reference), _arrays(resumed)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    shas = [
        [s["sha256"] for s in json.loads((tmp_path / d / "manifest.json").read_text())["shards"]]
        for d in ("reference", "resumed")
    ]
    assert shas[0] == shas[1] and len(shas[0]) == 3
    # A complete cache is reused: no teacher call at all.
    again = CountingTeacher(model)
    cache.cache_teacher_outputs(again, dataset, path=tmp_path / "resumed", **options)
    assert again._calls == 0


def test_shuffled_reads_interleave_shards_and_keep_alignment(data, tmp_path):
    x, y, dataset = data
    teacher = make_teacher()
    path = tmp_path / "cache"
    cache.cache_teacher_outputs(teacher, dataset, path=path, shard_size=BATCH, verbose=0)
    shuffled = cache.load_cached_teacher_outputs(path, batch_size=10, shuffle=True, seed=4)
    first, second = _arrays(shuffled), _arrays(shuffled)
    for sx, st, sy in (first, second):
        np.testing.assert_array_equal(np.sort(sy), np.sort(y))  # every example once per epoch
        order = [int(np.flatnonzero((x == row).all(1))[0]) for row in sx]
        np.testing.assert_array_equal(sy, y[order])
        np.testing.assert_allclose(st, teacher.predict(sx, verbose=0), atol=1e-6)
        assert set(order[:16]) - set(range(16))  # the first batch mixes shards
    assert not np.array_equal(first[0], second[0])  # reshuffled every epoch
    again = cache.load_cached_teacher_outputs(path, batch_size=10, shuffle=True, seed=4)
    np.testing.assert_array_equal(_arrays(again)[0], first[0])  # same seed, same order


class CallCounter(keras.layers.Layer):
    """Identity that counts real executions (a variable, so tf.function tracing does not count)."""

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

    def call(self, x):
        self.calls.assign_add(1.0)
        return x


def _image_data(n=32):
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(n, 8, 8, 1)).astype("float32")
    return x, rng.integers(0, 3, size=n).astype("int32")


def _image_teacher(counter=None):
    inputs = keras.Input((8, 8, 1))
    h = counter(inputs) if counter is not None else inputs
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(2))(h)
    return keras.Model(inputs, outputs, name="image_teacher")


def test_k_view_cache_round_trip_and_zero_teacher_calls_in_fit(tmp_path):
    x, y = _image_data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    counter = CallCounter()
    teacher = _image_teacher(counter)
    shift = keras.layers.RandomTranslation(0.25, 0.25, fill_mode="constant")
    cached = cache.cache_teacher_outputs(
        teacher, dataset, views=3, augmentation=shift, seed=7, verbose=0
    )
    assert float(counter.calls.numpy()) == 2 * 3  # one call per view of each of the 2 batches
    sx, st, sy = (
        np.concatenate([b[0][keys.STUDENT_INPUTS] for b in cached]),
        np.concatenate([b[0][keys.TEACHER_OUTPUTS]["logits"] for b in cached]),
        np.concatenate([b[1] for b in cached]),
    )
    assert sx.shape == (96, 8, 8, 1)
    # Batch b holds view 0, 1, 2 of its 16 examples, one after the other.
    views = sx[:48].reshape(3, 16, 8, 8, 1)
    np.testing.assert_array_equal(sy[:48], np.tile(y[:16], 3))
    assert not np.array_equal(views[0], views[1]) and not np.array_equal(views[0], x[:16])
    # Function matching: every stored output is the teacher's output for the stored (augmented) view.
    np.testing.assert_allclose(st, teacher.predict(sx, verbose=0), atol=1e-5)

    # Reproducible with a seed, on disk as in memory; another seed draws other views.
    on_disk = cache.cache_teacher_outputs(
        teacher, dataset, views=3, augmentation=shift, seed=7, path=tmp_path / "v", verbose=0
    )
    dx = np.concatenate([b[0][keys.STUDENT_INPUTS] for b in on_disk])
    np.testing.assert_array_equal(dx, sx)
    other = cache.cache_teacher_outputs(
        teacher, dataset, views=3, augmentation=shift, seed=8, verbose=0
    )
    assert not np.array_equal(np.concatenate([b[0][keys.STUDENT_INPUTS] for b in other]), sx)
    calls = float(counter.calls.numpy())

    # A long student schedule on the views never calls the teacher.
    student = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    distiller = keras_kd.Distiller(student, teacher=None, alpha=0.5)
    distiller.compile(optimizer="sgd", jit_compile=False)
    history = distiller.fit(cached, epochs=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    online_teacher = keras_kd.Distiller(
        keras.models.clone_model(student), teacher=teacher, alpha=0.5
    )
    online_teacher.compile(optimizer="sgd", jit_compile=False)
    online_teacher.fit(cached, epochs=2, verbose=0)  # a teacher attached: cached outputs still win
    assert float(counter.calls.numpy()) == calls


def test_views_need_an_augmentation_and_shared_inputs():
    x, y = _image_data(8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with pytest.raises(ValueError, match=r"`views=2` needs an `augmentation`"):
        cache.cache_teacher_outputs(_image_teacher(), dataset, views=2)
    with pytest.raises(ValueError, match=r"`views` must be an integer >= 1. Received: views=0"):
        cache.cache_teacher_outputs(_image_teacher(), dataset, views=0, augmentation=lambda b: b)
    split = tf.data.Dataset.from_tensor_slices(
        ({keys.TEACHER_INPUTS: x, keys.STUDENT_INPUTS: x}, y)
    ).batch(4)
    with pytest.raises(ValueError, match=r"must not carry separate 'teacher_inputs'"):
        cache.cache_teacher_outputs(
            _image_teacher(), split, views=2, augmentation=lambda b: b, verbose=0
        )


def test_several_caches_give_multi_teacher_targets(data, tmp_path):
    x, y, dataset = data
    teachers = [make_teacher(seed=1), make_teacher(seed=5)]
    for i, teacher in enumerate(teachers):
        cache.cache_teacher_outputs(
            teacher, dataset, path=tmp_path / f"t{i}", shard_size=BATCH, verbose=0
        )
    combined = cache.load_cached_teacher_outputs(
        [tmp_path / "t0", tmp_path / "t1"], teacher_weights=[3, 1], temperature=2.0
    )
    logits = [t.predict(x, verbose=0) for t in teachers]
    probs = [tf.nn.softmax(t / 2.0).numpy() for t in logits]
    expected = 2.0 * np.log(0.75 * probs[0] + 0.25 * probs[1])
    merged = np.concatenate([b[0][keys.TEACHER_OUTPUTS]["logits"] for b in combined])
    np.testing.assert_allclose(merged, expected, atol=1e-5)
    per_teacher = [
        np.concatenate([b[0][keys.TEACHER_OUTPUTS]["teachers_logits"][i] for b in combined])
        for i in range(2)
    ]
    np.testing.assert_allclose(per_teacher[1], logits[1], atol=1e-6)
    distiller = keras_kd.Distiller(make_student(), teacher=None, alpha=0.5)
    distiller.compile(optimizer="sgd", jit_compile=False)
    distiller.fit(combined, epochs=1, verbose=0)
    cache.cache_teacher_outputs(
        teachers[0], dataset.map(lambda a, b: (a * 2, b)), path=tmp_path / "other", verbose=0
    )
    with pytest.raises(ValueError, match=r"built from the same inputs.*inputs_sha256 differ"):
        cache.load_cached_teacher_outputs([tmp_path / "t0", tmp_path / "other"])


# ---------------------------------------------------------------- a clear error for every broken cache
@pytest.fixture
def built(data, tmp_path):
    _, _, dataset = data
    path = tmp_path / "cache"
    cache.cache_teacher_outputs(make_teacher(), dataset, path=path, shard_size=BATCH, verbose=0)
    return path


def test_truncated_shard_is_refused(built):
    shard = built / "shard-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2 - 3])  # cut inside a record
    with pytest.raises(ValueError, match=r"Truncated TFRecord shard .*shard-00001\.tfrecord"):
        cache.load_cached_teacher_outputs(built)


def test_missing_shard_is_refused(built):
    (built / "shard-00002.tfrecord").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"shard .*shard-00002\.tfrecord listed in .*manifest\.json is missing",
    ):
        cache.load_cached_teacher_outputs(built)


def test_corrupt_manifest_is_refused(built, data):
    (built / "manifest.json").write_text('{"format_version": 2, "shards": [')
    with pytest.raises(ValueError, match=r"manifest .*manifest\.json is corrupt \(not valid JSON"):
        cache.load_cached_teacher_outputs(built)
    with pytest.raises(ValueError, match=r"manifest\.json is corrupt"):
        cache.cache_teacher_outputs(make_teacher(), data[2], path=built, verbose=0)
    (built / "manifest.json").write_text('{"format_version": 1, "outputs": ["logits"]}')
    with pytest.raises(
        ValueError, match=r"manifest\.json is not a keras-kd 2 cache manifest: .*format_version=1"
    ):
        cache.load_cached_teacher_outputs(built)


def test_count_mismatch_is_refused(built):
    manifest = json.loads((built / "manifest.json").read_text())
    manifest["shards"][3]["num_examples"] = 15
    (built / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError,
        match=r"shard .*shard-00003\.tfrecord holds 16 examples but .*manifest\.json lists 15",
    ):
        cache.load_cached_teacher_outputs(built)
    manifest["shards"][3]["num_examples"] = 16
    manifest["num_examples"] = 70
    (built / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError, match=r"manifest\.json lists 70 examples but its shards hold 64"
    ):
        cache.load_cached_teacher_outputs(built)


def test_changed_shard_bytes_fail_the_checksum(built):
    shard = built / "shard-00000.tfrecord"
    content = bytearray(shard.read_bytes())
    content[-10] ^= 0xFF  # same length, one flipped byte inside a record
    shard.write_bytes(bytes(content))
    with pytest.raises(
        ValueError, match=r"shard .*shard-00000\.tfrecord does not match its sha256"
    ):
        cache.load_cached_teacher_outputs(built)


def test_infinite_dataset_is_refused_up_front(data):
    _, _, dataset = data
    with pytest.raises(
        ValueError, match=r"`dataset` is infinite .*`\.repeat\(\)`.*Received: dataset="
    ):
        cache.cache_teacher_outputs(make_teacher(), dataset.repeat(), verbose=0)


def test_a_later_changed_batch_is_refused(data, built):
    x, y, _ = data
    x = x.copy()
    x[40] += 1.0  # batch 2; the first batch, the cardinality and the spec are unchanged
    changed = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    with pytest.raises(
        ValueError, match=r"inputs_sha256 differs: batches 2-2, stored in .*shard-00002\.tfrecord"
    ):
        cache.cache_teacher_outputs(make_teacher(), changed, path=built, verbose=0)


def test_a_changed_weightless_layer_is_refused(data, tmp_path):
    _, _, dataset = data
    path = tmp_path / "cache"
    cache.cache_teacher_outputs(
        make_teacher(extra=keras.layers.Rescaling(1.0)), dataset, path=path, verbose=0
    )
    cache.cache_teacher_outputs(
        make_teacher(extra=keras.layers.Rescaling(1.0)), dataset, path=path, verbose=0
    )
    with pytest.raises(ValueError, match=r"built for teacher 'teacher_1'.*the config differs"):
        cache.cache_teacher_outputs(
            make_teacher(extra=keras.layers.Rescaling(2.0)), dataset, path=path, verbose=0
        )


def test_a_removed_softmax_is_refused(data, tmp_path):
    _, _, dataset = data
    with_softmax = keras.Sequential([make_teacher(), keras.layers.Softmax()], name="t")
    path = tmp_path / "cache"
    cache.cache_teacher_outputs(with_softmax, dataset, path=path, verbose=0)
    without = keras.Sequential([with_softmax.layers[0]], name="t")
    with pytest.raises(ValueError, match=r"the config differs"):
        cache.cache_teacher_outputs(without, dataset, path=path, verbose=0)


def test_a_changed_callable_teacher_is_refused(data, tmp_path):
    _, _, dataset = data
    model = make_teacher()
    path = tmp_path / "cache"

    def scaled(x):
        return model(x) * 1.0

    def doubled(x):
        return model(x) * 2.0

    cache.cache_teacher_outputs(scaled, dataset, path=path, verbose=0)
    cache.cache_teacher_outputs(scaled, dataset, path=path, verbose=0)  # the same callable: reused
    with pytest.raises(
        ValueError,
        match=r"built for teacher 'test_a_changed_callable_teacher_is_refused.<locals>.scaled'.*config differs",
    ):
        cache.cache_teacher_outputs(doubled, dataset, path=path, verbose=0)
    other_model = make_teacher(seed=3)

    def scaled(x):  # noqa: F811 - same code, another model held
        return other_model(x) * 1.0

    with pytest.raises(ValueError, match=r"the (weights|config) differs"):
        cache.cache_teacher_outputs(scaled, dataset, path=path, verbose=0)


def test_a_changed_top_k_temperature_is_refused(data, tmp_path):
    _, _, dataset = data
    path = tmp_path / "cache"
    cache.cache_teacher_outputs(
        make_teacher(), dataset, path=path, top_k=3, top_k_temperature=1.0, verbose=0
    )
    with pytest.raises(ValueError, match=r"holds top_k_temperature=1.0, not top_k_temperature=4.0"):
        cache.cache_teacher_outputs(
            make_teacher(), dataset, path=path, top_k=3, top_k_temperature=4.0, verbose=0
        )


def test_a_changed_augmentation_is_refused(tmp_path):
    x, y = _image_data(16)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    path = tmp_path / "cache"
    teacher = _image_teacher()
    shift = keras.layers.RandomTranslation(0.25, 0.25, fill_mode="constant")
    cache.cache_teacher_outputs(
        teacher, dataset, views=2, augmentation=shift, seed=1, path=path, verbose=0
    )
    with pytest.raises(ValueError, match=r"holds augmentation_seed=1, not augmentation_seed=2"):
        cache.cache_teacher_outputs(
            teacher, dataset, views=2, augmentation=shift, seed=2, path=path, verbose=0
        )
    wider = keras.layers.RandomTranslation(0.5, 0.5, fill_mode="constant")
    with pytest.raises(ValueError, match=r"holds augmentation="):
        cache.cache_teacher_outputs(
            teacher, dataset, views=2, augmentation=wider, seed=1, path=path, verbose=0
        )


_KILLED_SCRIPT = """
import sys
import numpy as np, tensorflow as tf
sys.path.insert(0, {tests!r})
from test_cache_sharded import CountingTeacher, make_teacher
from keras_kd.data import cache

x = np.random.default_rng(3).normal(size=(160, 8)).astype("float32")
dataset = tf.data.Dataset.from_tensor_slices((x, np.arange(160, dtype="int32"))).batch(16)
cache.cache_teacher_outputs(CountingTeacher(make_teacher(), delay=0.5), dataset, path={path!r}, shard_size=16, verbose=0)
"""


@pytest.mark.large
def test_resume_after_sigkill_at_half(tmp_path):
    """A real kill (SIGKILL of the caching process at ~50 %), then a rerun: same cache, fewer calls."""
    import os
    import pathlib
    import signal
    import subprocess
    import sys

    path = tmp_path / "killed"
    script = _KILLED_SCRIPT.format(tests=str(pathlib.Path(__file__).parent), path=str(path))
    process = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )
    deadline = time.time() + 600
    while time.time() < deadline:
        manifest = cache.read_manifest(path) if (path / "manifest.json").is_file() else None
        if manifest is not None and len(manifest["shards"]) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(cache.read_manifest(path)["shards"])
    assert 5 <= finished < 10

    x = np.random.default_rng(3).normal(size=(160, 8)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.arange(160, dtype="int32"))).batch(16)
    model = make_teacher()  # the same weights as in the killed process (seeded initializers)
    teacher = CountingTeacher(model)
    resumed = cache.cache_teacher_outputs(teacher, dataset, path=path, shard_size=16, verbose=0)
    assert teacher._calls == 10 - finished  # finished shards are not recomputed
    reference = cache.cache_teacher_outputs(CountingTeacher(model), dataset, verbose=0)
    for left, right in zip(_arrays(reference), _arrays(resumed), strict=True):
        np.testing.assert_array_equal(left, right)
