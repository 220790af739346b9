import sys

import numpy as np
import pytest

from keras_kd import export
from keras_kd.export.parity import TFLiteRunner, _dequantize, _quantize


def test_quantize_and_dequantize_use_scale_and_zero_point():
    detail = {"quantization": (0.5, -3), "dtype": np.int8}
    quantized = _quantize(np.array([1.0, -2.0, 100.0, -100.0], dtype=np.float32), detail)
    np.testing.assert_array_equal(quantized, np.array([-1, -7, 127, -128], dtype=np.int8))
    np.testing.assert_allclose(_dequantize(quantized, detail), [1.0, -2.0, 65.0, -62.5])
    # float tensors (scale 0) pass through
    float_detail = {"quantization": (0.0, 0), "dtype": np.float32}
    np.testing.assert_array_equal(
        _quantize(np.array([1.5]), float_detail), np.array([1.5], dtype=np.float32)
    )
    np.testing.assert_array_equal(
        _dequantize(np.array([1.5], dtype=np.float32), float_detail), [1.5]
    )


def test_format_table():
    rows = [
        {
            "model": "Keras teacher",
            "params": 203530,
            "size_bytes": 2_500_000,
            "latency_ms": 3.4214,
            "agreement": 0.9609,
            "max_abs_logit_diff": None,
            "accuracy": None,
        },
        {
            "model": "TFLite int8",
            "params": 50890,
            "size_bytes": 56080,
            "latency_ms": 0.0052,
            "agreement": 0.998046875,
            "max_abs_logit_diff": 1.4637,
            "accuracy": None,
        },
    ]
    lines = export.format_table(rows).splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "model",
        "params",
        "size on disk",
        "latency / example",
        "agreement with Keras student",
        "max abs logit diff",
    ]  # the empty accuracy column is dropped
    assert [cell.strip() for cell in lines[2].strip("|").split("|")] == [
        "Keras teacher",
        "203,530",
        "2.4 MB",
        "3.421 ms",
        "96.09 %",
        "–",
    ]
    assert [cell.strip() for cell in lines[3].strip("|").split("|")] == [
        "TFLite int8",
        "50,890",
        "54.8 KB",
        "0.005 ms",
        "99.80 %",
        "1.46e+00",
    ]
    assert export.format_table(rows, fmt="text").splitlines()[0].startswith("model ")


def test_compare_exports_measures_teacher_student_and_tflite(mnist_kd, tflite_files, capsys):
    x, y = mnist_kd["x_test"][:128], mnist_kd["y_test"][:128]
    rows = export.print_report(
        mnist_kd["distiller"],
        {"TFLite float32": tflite_files[None], "TFLite int8": tflite_files["int8"]},
        x,
        y,
        teacher=mnist_kd["teacher"],
        latency_repeats=5,
    )
    assert [row["model"] for row in rows] == [
        "Keras teacher",
        "Keras student",
        "TFLite float32",
        "TFLite int8",
    ]
    teacher_logits = mnist_kd["teacher"].predict(x, verbose=0)
    student_logits = mnist_kd["student"].predict(x, verbose=0)
    teacher, student, float32, int8 = rows
    assert teacher["agreement"] == pytest.approx(
        np.mean(teacher_logits.argmax(-1) == student_logits.argmax(-1))
    )
    assert teacher["accuracy"] == pytest.approx(np.mean(teacher_logits.argmax(-1) == y))
    assert teacher["params"] == mnist_kd["teacher"].count_params() > 4 * student["params"]
    assert teacher["size_bytes"] > 4 * student["size_bytes"]
    assert student["agreement"] == 1.0 and student["max_abs_logit_diff"] == 0.0
    assert student["accuracy"] == pytest.approx(np.mean(student_logits.argmax(-1) == y))
    assert float32["max_abs_logit_diff"] < 1e-4 and float32["accuracy"] == student["accuracy"]
    assert int8["size_bytes"] < 0.35 * float32["size_bytes"]
    printed = capsys.readouterr().out
    assert "| Keras teacher" in printed and "| TFLite int8" in printed


def test_falls_back_to_tf_lite_interpreter_without_litert(tflite_files, mnist_kd, monkeypatch):
    x = {"pixels": mnist_kd["x_test"][:16]}
    litert_logits, _ = TFLiteRunner(tflite_files["int8"]).predict(x)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # makes the import fail
    with pytest.warns(UserWarning, match=r'pip install "keras-kd\[tflite\]"'):
        runner = TFLiteRunner(tflite_files["int8"])
    assert runner.backend == "tf.lite"
    logits, seconds = runner.predict(x)
    np.testing.assert_allclose(logits, litert_logits, atol=1e-6)
    assert seconds.shape == (16,) and (seconds > 0).all()
    with pytest.raises(ValueError, match=r"takes inputs \['pixels'\]; missing \['pixels'\]"):
        runner.predict({"image": x["pixels"]})


def test_tflite_runner_config_round_trip(tflite_files):
    runner = TFLiteRunner(tflite_files["dynamic"], num_threads=2)
    config = runner.get_config()
    assert config == {"path": str(tflite_files["dynamic"]), "num_threads": 2}
    clone = TFLiteRunner.from_config(config)
    assert clone.get_config() == config and list(clone.inputs) == ["pixels"]
