import numpy as np
import pytest

from keras_kd.cli import main, report

pytest.importorskip("mlxtend")


def _save_mlp(path, hidden):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(hidden),
                              keras.layers.Dense(10)])
    model.save(path)
    return model


def test_report_command_writes_markdown_and_plots(tmp_path, capsys):
    teacher, student = str(tmp_path / "teacher.keras"), str(tmp_path / "student.keras")
    _save_mlp(teacher, 32)
    _save_mlp(student, 4)
    code = main.main(["report", "--models", teacher, student, "--dataset", "mnist_5k", "--max-examples", "64",
                      "--output-dir", str(tmp_path / "report")])
    assert code == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| teacher " in text and "| student " in text and "teacher agreement" in text
    assert (tmp_path / "report" / "confusion_matrices.png").is_file()
    assert "Report:" in capsys.readouterr().out


def test_report_needs_a_dataset(tmp_path, capsys):
    assert main.main(["report", "--models", "a.keras", "--output-dir", str(tmp_path)]) == 2
    assert "keras-kd report: error: give --config FILE.yaml or --dataset NAME" in capsys.readouterr().err


def test_model_row_values():
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False)])
    model.set_weights([np.array([[1.0, 0.0], [0.0, 1.0]], "float32")])  # logits = inputs
    x = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]], "float32")
    y = np.array([0, 1, 1, 1], "int32")
    reference = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    row = report.model_row("m", model, x, y, reference_logits=reference, class_names=["a", "b"])
    assert row["accuracy"] == pytest.approx(0.75)
    assert row["macro P"] == pytest.approx((0.5 + 1.0) / 2)
    assert row["macro R"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert row["teacher agreement"] == pytest.approx(0.75)  # predictions 0,1,0,1 vs 0,0,0,1
    assert row["params"] == 4
    assert row["_report"]["b"]["support"] == 3
    # no model (an ensemble's logits): the same metrics, nothing measured
    bare = report.model_row("e", None, x, y, reference_logits=reference, class_names=["a", "b"], logits=x)
    assert bare["accuracy"] == row["accuracy"] and bare["macro R"] == row["macro R"]
    assert (bare["params"], bare["size on disk"], bare["CPU latency / example"]) == (None, "", "")
    with pytest.raises(ValueError, match=r"`model_row\(model=None\)` needs the test `logits`"):
        report.model_row("e", None, x, y)
