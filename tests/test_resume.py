"""Fault tolerance: a distillation killed mid-training resumes with `keras.callbacks.BackupAndRestore`
and ends with the weights of an uninterrupted run (deterministic ops, atol 1e-5): student, feature
projection, optimizer moments, and the Distiller's alpha / temperature variables."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd import Distiller
from keras_kd.callbacks import TemperatureScheduler
from tests.test_distribute import _build_models, _hidden_state_term

EPOCHS = 3
BATCHES_PER_EPOCH = 6
KILL_AFTER = 9  # global batches: mid second epoch


@pytest.fixture(autouse=True)
def _deterministic_ops():
    from tensorflow.python.framework import config  # no public switch to turn it back off

    was_enabled = config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not was_enabled:
        config.disable_op_determinism()


def _dataset():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16 * BATCHES_PER_EPOCH, 8)).astype("float32")
    y = rng.integers(0, 4, size=(len(x),)).astype("int32")
    # Same order every epoch and after a restart: the resumed epoch sees the batches it lost.
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _distiller():
    keras.utils.set_random_seed(7)
    teacher, student = _build_models()
    distiller = Distiller(student, teacher, alpha=0.8, **_hidden_state_term())  # + a learned projection
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), metrics=["accuracy"])
    return distiller


class DecayAlpha(keras.callbacks.Callback):
    """State that lives only in the Distiller's `alpha` variable (not recomputable from the epoch)."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.alpha.assign(self.model.alpha * 0.5)


class KillAfter(keras.callbacks.Callback):
    """Simulates preemption: raises after `n` training batches."""

    def __init__(self, n):
        super().__init__()
        self.n, self.seen = n, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.n:
            raise KeyboardInterrupt(f"preempted after {self.n} batches")


def _schedule():
    return TemperatureScheduler(lambda step: 4.0 - 0.15 * step, unit="step")  # reads optimizer.iterations


def test_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path):
    reference = _distiller()
    reference.fit(_dataset(), epochs=EPOCHS, verbose=0, callbacks=[_schedule(), DecayAlpha()])

    backup_dir = str(tmp_path / "backup")
    first = _distiller()
    with pytest.raises(KeyboardInterrupt, match="preempted after 9 batches"):
        first.fit(
            _dataset(),
            epochs=EPOCHS,
            verbose=0,
            # BackupAndRestore last: it saves after the other callbacks' epoch-end updates.
            callbacks=[_schedule(), DecayAlpha(), KillAfter(KILL_AFTER), keras.callbacks.BackupAndRestore(backup_dir)],
        )
    assert int(first.optimizer.iterations) == KILL_AFTER

    resumed = _distiller()  # a new process would rebuild everything from scratch
    history = resumed.fit(
        _dataset(),
        epochs=EPOCHS,
        verbose=0,
        callbacks=[_schedule(), DecayAlpha(), keras.callbacks.BackupAndRestore(backup_dir)],
    )
    assert history.epoch == [1, 2]  # epoch 0 was restored, not re-run
    assert int(resumed.optimizer.iterations) == EPOCHS * BATCHES_PER_EPOCH
    # Distiller state: alpha (only in the checkpoint), temperature (from the restored iterations).
    np.testing.assert_allclose(float(resumed.alpha.numpy()), 0.8 * 0.5**EPOCHS, rtol=1e-6)
    np.testing.assert_allclose(float(resumed.temperature.numpy()), float(reference.temperature.numpy()), rtol=1e-6)
    # Weights and optimizer moments equal those of the uninterrupted run.
    projection = resumed.feature_losses[0].get_weights()
    assert [w.shape for w in projection] == [(8, 16), (16,)]
    for got, want in zip(
        resumed.student.get_weights() + projection,
        reference.student.get_weights() + reference.feature_losses[0].get_weights(),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)
    for got, want in zip(resumed.optimizer.variables, reference.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    # The teacher stayed frozen through save / restore.
    for got, want in zip(resumed.teacher.get_weights(), _build_models()[0].get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_resume_without_backup_would_differ(tmp_path):
    """Control: restarting from scratch for the remaining epochs does not give the same weights,
    so the equality above is due to the restored state."""
    reference = _distiller()
    reference.fit(_dataset(), epochs=EPOCHS, verbose=0)
    restarted = _distiller()
    restarted.fit(_dataset(), epochs=EPOCHS, initial_epoch=1, verbose=0)
    difference = max(
        np.abs(a - b).max() for a, b in zip(restarted.student.get_weights(), reference.student.get_weights(), strict=True)
    )
    assert difference > 1e-3
