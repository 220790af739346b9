import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd import export
from keras_kd.data import STUDENT_INPUTS, TEACHER_OUTPUTS
from keras_kd.export.parity import TFLiteRunner
from keras_kd.export.saved_model import input_signature
from keras_kd.export.tflite import as_examples, check_quantization

# quantization -> (minimum argmax agreement with Keras on 512 held-out digits, max abs logit difference)
THRESHOLDS = {
    None: (0.995, 1e-4),
    "float16": (0.995, 0.05),
    "dynamic": (0.99, 0.5),
    "int8": (0.98, 3.0),
}


@pytest.mark.parametrize("quantization", export.QUANTIZATIONS)
def test_tflite_parity_with_keras(quantization, tflite_files, mnist_kd):
    result = export.check_parity(
        mnist_kd["student"], tflite_files[quantization], (mnist_kd["x_test"], mnist_kd["y_test"])
    )
    min_agreement, max_difference = THRESHOLDS[quantization]
    assert result["num_examples"] == 512
    assert result["agreement"] >= min_agreement
    assert result["max_abs_logit_diff"] <= max_difference
    assert result["interpreter"] == "ai-edge-litert"
    assert result["size_bytes"] == os.path.getsize(tflite_files[quantization])
    assert 0 < result["latency_ms"] < 50
    logits = mnist_kd["student"].predict(mnist_kd["x_test"], verbose=0)
    assert result["keras_accuracy"] == pytest.approx(
        np.mean(logits.argmax(-1) == mnist_kd["y_test"])
    )
    assert result["keras_accuracy"] > 0.85  # a trained student
    assert abs(result["accuracy"] - result["keras_accuracy"]) <= 1 - min_agreement


def test_quantized_files_are_smaller(tflite_files, mnist_kd):
    size = {q: os.path.getsize(path) for q, path in tflite_files.items()}
    weights_bytes = 4 * mnist_kd["student"].count_params()
    assert (
        weights_bytes < size[None] < 1.2 * weights_bytes
    )  # the student's float32 weights, not the teacher's
    assert 0.4 < size["float16"] / size[None] < 0.6
    assert size["dynamic"] / size[None] < 0.35
    assert size["int8"] / size[None] < 0.35


def test_int8_is_integer_inside_with_float_io_by_default(tflite_files, mnist_kd, tmp_path):
    runner = TFLiteRunner(tflite_files["int8"])
    assert runner.inputs["pixels"]["dtype"] == np.float32
    assert runner.output["dtype"] == np.float32
    tensor_types = {d["dtype"] for d in runner.interpreter.get_tensor_details()}
    assert np.int8 in tensor_types

    path = export.tflite(
        mnist_kd["student"],
        tmp_path / "int8_io.tflite",
        quantization="int8",
        representative_data=mnist_kd["x_train"][:256],
        integer_io=True,
    )
    runner = TFLiteRunner(path)
    assert runner.inputs["pixels"]["dtype"] == np.int8
    assert runner.output["dtype"] == np.int8
    result = export.check_parity(mnist_kd["student"], path, mnist_kd["x_test"])
    assert result["agreement"] >= 0.98  # inputs quantized, logits dequantized correctly
    assert result["max_abs_logit_diff"] <= 3.0


def test_tflite_from_distiller_equals_tflite_from_student(tflite_files, mnist_kd, tmp_path):
    from_student = export.tflite(mnist_kd["student"], tmp_path / "student.tflite")
    assert os.path.getsize(from_student) == os.path.getsize(tflite_files[None])
    with open(tflite_files[None], "rb") as f:
        flatbuffer = f.read()
    assert b"teacher" not in flatbuffer
    assert b"student_hidden" in flatbuffer  # layer names do appear in the file: the check can fail


def test_tflite_argument_errors(mnist_kd, tmp_path):
    with pytest.raises(
        ValueError,
        match=r"one of None, 'float16', 'dynamic', 'int8'. Received: quantization='int4'",
    ):
        export.tflite(mnist_kd["student"], tmp_path / "x.tflite", quantization="int4")
    with pytest.raises(
        ValueError, match=r"needs `representative_data`.*Received: representative_data=None"
    ):
        export.tflite(mnist_kd["student"], tmp_path / "x.tflite", quantization="int8")
    with pytest.raises(
        ValueError,
        match=r"`integer_io=True` needs `quantization='int8'`. Received: quantization='dynamic'",
    ):
        export.tflite(
            mnist_kd["student"], tmp_path / "x.tflite", quantization="dynamic", integer_io=True
        )
    assert not (tmp_path / "x.tflite").exists()
    assert check_quantization("none") is None and check_quantization("float32") is None


def test_as_examples_reads_arrays_tuples_and_datasets(mnist_kd):
    specs = input_signature(mnist_kd["student"])
    x, y = mnist_kd["x_test"][:10], mnist_kd["y_test"][:10]
    for data in (
        (x, y),
        tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
        tf.data.Dataset.from_tensor_slices((x, y)),
        tf.data.Dataset.from_tensor_slices(
            ({STUDENT_INPUTS: x, TEACHER_OUTPUTS: np.zeros((10, 10))}, y)
        ).batch(3),
    ):
        inputs, labels = as_examples(data, specs, limit=7)
        np.testing.assert_array_equal(inputs["pixels"], x[:7])
        np.testing.assert_array_equal(labels, y[:7])
    for data in (x, tf.data.Dataset.from_tensor_slices((x,)).batch(4)):
        inputs, labels = as_examples(data, specs)
        assert labels is None
        np.testing.assert_array_equal(inputs["pixels"], x)
    with pytest.raises(ValueError, match=r"takes 1 inputs \['pixels'\]; the data has 2"):
        as_examples([x, x], specs)


def test_text_student_tflite_takes_token_ids_and_int8_keeps_them_int32(text_kd, tmp_path):
    token_ids = text_kd["preprocessor"](tf.constant(text_kd["texts"].astype(str)))[
        "token_ids"
    ].numpy()
    path = export.tflite(
        text_kd["student"],
        tmp_path / "text_int8.tflite",
        quantization="int8",
        representative_data=token_ids[:100],
    )
    runner = TFLiteRunner(path)
    assert list(runner.inputs) == ["token_ids"] and runner.inputs["token_ids"]["dtype"] == np.int32
    result = export.check_parity(text_kd["student"], path, (token_ids, text_kd["labels"]))
    assert result["agreement"] >= 0.98
    assert result["accuracy"] == pytest.approx(result["keras_accuracy"], abs=0.02)


def test_subclassed_student_with_dict_outputs(tmp_path):
    class Student(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.head = keras.layers.Dense(3)

        def call(self, x):
            hidden = self.hidden(x)
            return {"logits": self.head(hidden), "hidden_states": [hidden]}

    student = Student()
    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    student(x[:2])
    path = export.tflite(
        student, tmp_path / "sub.tflite", signature=tf.TensorSpec([None, 5], tf.float32, "features")
    )
    assert list(TFLiteRunner(path).inputs) == ["features"]
    result = export.check_parity(
        student, path, {"features": x}, signature=tf.TensorSpec([None, 5], tf.float32, "features")
    )
    assert result["agreement"] == 1.0 and result["max_abs_logit_diff"] < 1e-5
    assert result["num_examples"] == 64
