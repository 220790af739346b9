"""In-graph step checks (`keras_kd.checks`): every batch, under XLA and without, before the update.

Each bad value sits in a LATE batch (the first-batch checks of `keras_kd.validation` see nothing);
the tests assert the error names the batch, the tensor and the value, that the bad update was not
applied (weights and optimizer state equal those after the previous batch) and that they are finite.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_kd import Distiller, checks
from keras_kd.callbacks import NonFiniteLossGuard
from keras_kd.data import keys

NUM_CLASSES = 4
BATCH = 8
BAD_ROW = 43  # batch 5 (rows 40..47) of 8 batches, no shuffling
BAD_BATCH = BAD_ROW // BATCH
JIT = pytest.mark.parametrize("jit_compile", [False, True], ids=["eager_graph", "xla"])


def _mlp(name=None, classes=NUM_CLASSES):
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(classes)],
        name=name,
    )


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(
        0, NUM_CLASSES, size=(n,)
    ).astype("int32")


class Snapshots(keras.callbacks.Callback):
    """The student's weights and the optimizer's variables after each completed batch."""

    def __init__(self):
        super().__init__()
        self.weights, self.slots = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([w.numpy().copy() for w in self.model.trainable_weights])
        self.slots.append([v.numpy().copy() for v in self.model.optimizer.variables])


def _fit_refused(distiller, match, *args, **kwargs):
    snapshots = Snapshots()
    with pytest.raises(checks.BadBatchError, match=match):
        distiller.fit(*args, epochs=1, verbose=0, shuffle=False, callbacks=[snapshots], **kwargs)
    # StepCheck runs first: the snapshot of the bad batch is never taken.
    assert len(snapshots.weights) == BAD_BATCH
    assert int(distiller.optimizer.iterations.numpy()) == BAD_BATCH
    for before, after in zip(snapshots.weights[-1], distiller.trainable_weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())  # the bad update was not applied
        assert np.all(np.isfinite(after.numpy()))
    for before, after in zip(snapshots.slots[-1], distiller.optimizer.variables, strict=True):
        np.testing.assert_array_equal(before, after.numpy())  # Adam's moments did not move either
    return snapshots


def _distiller(jit_compile, student=None, teacher="mlp", **kwargs):
    teacher = _mlp("teacher") if teacher == "mlp" else teacher
    distiller = Distiller(student or _mlp("student"), teacher, alpha=0.5, **kwargs)
    distiller.compile(optimizer="adam", jit_compile=jit_compile)
    return distiller


# ---------------------------------------------------------------- labels
@JIT
def test_label_out_of_range_in_a_late_batch(jit_compile):
    x, y = _data()
    y[BAD_ROW] = 7
    _fit_refused(
        _distiller(jit_compile),
        rf"Epoch 0, batch {BAD_BATCH} \(training step {BAD_BATCH}\): `y` holds (1 label\(s\)|a label) outside \[0, 4\).*e\.g\. 7\. The update of this batch was not applied",
        x,
        y,
        batch_size=BATCH,
    )


def test_float_label_with_a_fraction_in_a_late_batch():
    x, y = _data()
    y = y.astype("float32")
    y[BAD_ROW] = 1.5
    _fit_refused(
        _distiller(True),
        rf"batch {BAD_BATCH} .*`y` holds 1 label\(s\) outside \[0, 4\).*e\.g\. 1\.5",
        x,
        y,
        batch_size=BATCH,
    )


# ---------------------------------------------------------------- non-finite values
@pytest.mark.parametrize(
    "jit_compile, bad", [(False, np.inf), (True, np.nan)], ids=["inf", "nan_xla"]
)
def test_non_finite_input_in_a_late_batch(jit_compile, bad):
    x, y = _data()
    x[BAD_ROW, 2] = bad
    _fit_refused(
        _distiller(jit_compile),
        rf"Epoch 0, batch {BAD_BATCH} \(training step {BAD_BATCH}\): `x` holds 1 NaN/Inf value\(s\), e\.g\. {bad}\.",
        x,
        y,
        batch_size=BATCH,
    )


@JIT
def test_non_finite_cached_teacher_outputs_in_a_late_batch(jit_compile):
    x, y = _data()
    logits = np.random.default_rng(1).normal(size=(64, NUM_CLASSES)).astype("float32")
    logits[BAD_ROW, 1] = np.nan
    features = {keys.STUDENT_INPUTS: x, keys.TEACHER_OUTPUTS: {"logits": logits}}
    dataset = tf.data.Dataset.from_tensor_slices((features, y)).batch(BATCH)
    _fit_refused(
        _distiller(jit_compile, teacher=None),
        rf"batch {BAD_BATCH} .*`x\['teacher_outputs'\] \(cached teacher outputs\)\['logits'\]` holds 1 NaN/Inf value\(s\), e\.g\. nan",
        dataset,
    )


class NaNOnMarker(keras.Model):
    """A teacher whose logits are NaN for examples whose first feature is > 100."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(NUM_CLASSES)

    def call(self, x):
        logits = self.dense(x)
        return ops.where(x[:, :1] > 100.0, ops.full_like(logits, np.nan), logits)


@JIT
def test_non_finite_online_teacher_outputs(jit_compile):
    x, y = _data()
    x[BAD_ROW, 0] = 1000.0  # finite for the student
    _fit_refused(
        _distiller(jit_compile, teacher=NaNOnMarker(name="teacher")),
        rf"batch {BAD_BATCH} .*`teacher_outputs\['logits'\]` holds 4 NaN/Inf value\(s\), e\.g\. nan",
        x,
        y,
        batch_size=BATCH,
    )


def test_non_finite_sample_weight():
    jit_compile = True
    x, y = _data()
    weights = np.ones(64, "float32")
    weights[BAD_ROW] = np.inf
    _fit_refused(
        _distiller(jit_compile),
        rf"batch {BAD_BATCH} .*`sample_weight` holds 1 NaN/Inf value\(s\), e\.g\. inf",
        x,
        y,
        sample_weight=weights,
        batch_size=BATCH,
    )


class _SqrtAtZero(keras.layers.Layer):
    """A feature term that is finite (0) for a batch whose first input is exactly 0, with a NaN gradient there."""

    def call(self, teacher_outputs, student_outputs, sample_weight=None):
        logits = student_outputs["logits"]
        return ops.sqrt(ops.sum(ops.square(logits - ops.stop_gradient(logits))))


def test_finite_loss_with_non_finite_gradients():
    jit_compile = False
    x, y = _data()
    _fit_refused_at_zero = pytest.raises(
        checks.BadBatchError,
        match=r"Epoch 0, batch 0 .*`gradient of .*` holds \d+ NaN/Inf value\(s\), e\.g\. nan",
    )
    distiller = _distiller(jit_compile, feature_losses=[_SqrtAtZero(name="sqrt_term")])
    before = [w.numpy().copy() for w in distiller.trainable_weights]
    with _fit_refused_at_zero:
        distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    for old, new in zip(before, distiller.trainable_weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    assert int(distiller.optimizer.iterations) == 0


class _NaNTerm(keras.layers.Layer):
    def call(self, teacher_outputs, student_outputs, sample_weight=None):
        return ops.mean(student_outputs["logits"]) * np.float32(np.nan)


def test_non_finite_loss_term_is_named():
    x, y = _data()
    distiller = _distiller(True, feature_losses=[_NaNTerm(name="hidden_mse")])
    with pytest.raises(
        checks.BadBatchError,
        match=r"batch 0 .*`loss term hidden_mse` holds 1 NaN/Inf value\(s\), e\.g\. nan",
    ):
        distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)


# ---------------------------------------------------------------- token ids (XLA clamps them silently)
def test_token_id_beyond_the_embedding_under_xla():
    tokens = np.random.default_rng(0).integers(0, 50, size=(64, 5)).astype("int32")
    tokens[BAD_ROW, 3] = 77

    def model(name):
        return keras.Sequential(
            [
                keras.Input((5,), dtype="int32"),
                keras.layers.Embedding(50, 4),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(NUM_CLASSES),
            ],
            name=name,
        )

    _fit_refused(
        _distiller(True, student=model("student"), teacher=model("teacher")),
        rf"batch {BAD_BATCH} .*`x` holds 1 token id\(s\) outside \[0, 50\) \(the largest Embedding table\), e\.g\. 77",
        tokens,
        _data()[1],
        batch_size=BATCH,
    )


# ---------------------------------------------------------------- online modes
@JIT
def test_online_mode_skips_both_updates(jit_compile):
    x, y = _data()
    x[BAD_ROW, 2] = np.nan
    teacher = _mlp("teacher")
    distiller = _distiller(jit_compile, teacher=teacher, mode="mutual")
    with pytest.raises(
        checks.BadBatchError, match=rf"batch {BAD_BATCH} .*`x` holds 1 NaN/Inf value\(s\)"
    ):
        distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    assert int(distiller.optimizer.iterations) == BAD_BATCH
    assert int(distiller.teacher_optimizer.iterations) == BAD_BATCH
    assert all(np.all(np.isfinite(w.numpy())) for w in teacher.weights + distiller.student.weights)


# ---------------------------------------------------------------- several replicas
# In a subprocess: TF reuses collective instance keys across MirroredStrategy objects of one process, so a
# strategy here would collide with those of other test modules. Graph mode only: TF refuses XLA steps whose
# variables live on another CPU device.
_MIRRORED_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import conftest  # two logical CPUs
import numpy as np, tensorflow as tf
from keras_kd import checks
import test_checks as t

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
found = {}
cases = {  # bad rows of batch 5 (rows 40..43 go to replica 0, 44..47 to replica 1) and their values
    "replica_0": {t.BAD_ROW - 3: np.nan, t.BAD_ROW - 2: np.inf},
    "replica_1": {t.BAD_ROW + 3: -np.inf},
    "both": {t.BAD_ROW - 1: np.inf, t.BAD_ROW: -np.inf, t.BAD_ROW + 1: np.nan},
    "gradient": {},
}
for case, rows in cases.items():
    x, y = t._data()
    for row, value in rows.items():
        x[row, 2] = value
    with strategy.scope():
        distiller = t._distiller(False, **({} if rows else {"feature_losses": [t._SqrtAtZero(name="sqrt_term")]}))
        before = [w.numpy().copy() for w in distiller.trainable_weights]
    snapshots = t.Snapshots()
    try:
        distiller.fit(x, y, batch_size=t.BATCH, epochs=1, verbose=0, shuffle=False, callbacks=[snapshots])
        message = None
    except checks.BadBatchError as error:
        message = str(error)
    last = snapshots.weights[-1] if snapshots.weights else before
    found[case] = {
        "message": message,
        "iterations": int(distiller.optimizer.iterations.numpy()),
        "unchanged": all(np.array_equal(a, b.numpy()) for a, b in zip(last, distiller.trainable_weights)),
    }
print("RESULT " + json.dumps(found))
"""


def test_failures_on_one_of_two_replicas():
    """MirroredStrategy on 2 logical CPUs: every replica skips the update and the error names the tensor, the
    number of bad values summed over the replicas and the first bad value of the first replica holding one,
    whichever replica received the bad rows (each computes the failure details at most once)."""
    import json
    import os
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, here], capture_output=True, text=True,
                          env=env, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    found = json.loads(lines[-1][len("RESULT "):])
    tail = ("The update of this batch was not applied (weights unchanged). Fix or drop these examples; to turn the "
            "in-graph checks off (not recommended) pass `Distiller(check_values=False)`.")
    # the bad values summed over the replicas; the first bad value of the first replica holding one
    for case, (count, shown) in {"replica_0": (2, "nan"), "replica_1": (1, "-inf"), "both": (3, "inf")}.items():
        assert found[case]["message"] == (
            f"Epoch 0, batch {BAD_BATCH} (training step {BAD_BATCH}): `x` holds {count} NaN/Inf value(s), "
            f"e.g. {shown}. {tail}"
        ), case
        assert found[case]["iterations"] == BAD_BATCH and found[case]["unchanged"], case
    # the first kernel's gradient (6 x 8) is NaN everywhere on each of the 2 replicas: 96 values
    assert re.fullmatch(
        r"Epoch 0, batch 0 \(training step 0\): `gradient of student/dense_\d+/kernel` holds 96 NaN/Inf "
        r"value\(s\), e\.g\. nan\. " + re.escape(tail),
        found["gradient"]["message"],
    ), found["gradient"]["message"]
    assert found["gradient"]["iterations"] == 0 and found["gradient"]["unchanged"]


# ---------------------------------------------------------------- the switch
def test_check_values_false_trains_on_bad_values():
    x, y = _data()
    x[BAD_ROW, 2] = np.nan
    distiller = _distiller(True)
    distiller.check_values = False
    distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    assert int(distiller.optimizer.iterations) == 8
    assert not np.all(np.isfinite(distiller.student.weights[0].numpy()))  # what the checks prevent


def test_switching_the_checks_back_on_retraces():
    x, y = _data()
    distiller = _distiller(False)
    distiller.check_values = False
    distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    distiller.check_values = True
    x[BAD_ROW, 2] = np.nan
    with pytest.raises(checks.BadBatchError, match=rf"batch {BAD_BATCH} "):
        distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)


def test_second_fit_after_an_error_starts_clean():
    x, y = _data()
    bad = x.copy()
    bad[BAD_ROW, 2] = np.nan
    distiller = _distiller(False)
    with pytest.raises(checks.BadBatchError):
        distiller.fit(bad, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # no stale failure is reported
    assert int(distiller.optimizer.iterations) == BAD_BATCH + 8


def test_guard_still_works_with_checks_on():
    x, y = _data()
    distiller = _distiller(False)
    history = distiller.fit(
        x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[NonFiniteLossGuard()]
    )
    assert np.isfinite(history.history["loss"][0])
