import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import keras_kd
from keras_kd.callbacks import DistillationTensorBoard


def _read(directory):
    files = glob.glob(os.path.join(directory, "events.out.tfevents.*"))
    assert files, f"no event file in {directory}"
    scalars, texts = {}, {}
    for path in files:
        acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        for tag in acc.Tags()["tensors"]:
            events = acc.Tensors(tag)
            if events[0].tensor_proto.dtype == 7:  # DT_STRING: text summary
                texts[tag] = events[0].tensor_proto.string_val[0].decode()
            else:
                scalars.setdefault(tag, []).extend(float(tf.make_ndarray(e.tensor_proto)) for e in events)
    return scalars, texts


def _tiny_distiller():
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    distiller = keras_kd.Distiller(student, teacher, distillation_loss=keras_kd.losses.KLDivergence(2.0), alpha=0.7)
    distiller.compile(optimizer="sgd", metrics=["accuracy"])
    return distiller


def test_event_files_hold_distillation_scalars(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    callback = DistillationTensorBoard(
        run_name="unit", log_dir=str(tmp_path / "unit"), config={"distillation": {"temperature": 2.0}},
        teacher_metrics={"accuracy": 0.84},
    )
    _tiny_distiller().fit(x, y, validation_data=(x, y), epochs=2, batch_size=16, verbose=0, callbacks=[callback])

    train, texts = _read(str(tmp_path / "unit" / "train"))
    for tag in ("epoch_loss", "epoch_student_loss", "epoch_distillation_loss", "epoch_teacher_agreement",
                "epoch_accuracy", "epoch_learning_rate"):
        assert len(train[tag]) == 2, tag
    assert train["epoch_temperature"] == pytest.approx([2.0, 2.0])
    assert train["epoch_alpha"] == pytest.approx([0.7, 0.7])
    assert train["teacher_accuracy"] == pytest.approx([0.84])
    assert "temperature: 2.0" in texts["config"]
    validation, _ = _read(str(tmp_path / "unit" / "validation"))
    assert {"epoch_loss", "epoch_accuracy", "epoch_distillation_loss", "epoch_teacher_agreement"} <= set(validation)


def test_default_log_dir_is_runs_run_name():
    callback = DistillationTensorBoard(run_name="abc")
    assert callback.log_dir == os.path.join("runs", "abc")
    assert DistillationTensorBoard().run_name.startswith("kd-")


def test_teacher_metrics_must_be_scalars():
    with pytest.raises(ValueError, match="`teacher_metrics` values must be scalars"):
        DistillationTensorBoard(run_name="x", teacher_metrics={"accuracy": [0.1, 0.2]})
