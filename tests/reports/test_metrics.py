import numpy as np
import pytest

from keras_kd.reports import metrics

Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0]


def test_confusion_matrix_and_accuracy():
    np.testing.assert_array_equal(metrics.confusion_matrix(Y_TRUE, Y_PRED), [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    # logits are argmaxed
    logits = np.eye(3)[Y_PRED] * 5.0
    assert metrics.accuracy(Y_TRUE, logits) == pytest.approx(4 / 6)


def test_precision_recall_f1_hand_values():
    precision, recall, f1, support = metrics.precision_recall_f1(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(precision, [1 / 2, 2 / 3, 1.0])
    np.testing.assert_allclose(recall, [1 / 2, 1.0, 1 / 2])
    np.testing.assert_allclose(f1, [1 / 2, 0.8, 2 / 3])
    np.testing.assert_array_equal(support, [2, 2, 2])


def test_classification_report_macro_and_weighted():
    report = metrics.classification_report(Y_TRUE, Y_PRED, class_names=["a", "b", "c"])
    assert report["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2}
    assert report["macro avg"]["precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert report["macro avg"]["recall"] == pytest.approx(2 / 3)
    assert report["macro avg"]["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert report["weighted avg"]["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # equal supports
    assert report["accuracy"] == pytest.approx(4 / 6)
    text = metrics.format_classification_report(report)
    assert "macro avg" in text and "0.656" in text


def test_zero_division_gives_zero():
    # class 1 never predicted and never true except once
    precision, recall, f1, _ = metrics.precision_recall_f1([0, 0, 1], [0, 0, 0])
    np.testing.assert_allclose(precision, [2 / 3, 0.0])
    np.testing.assert_allclose(recall, [1.0, 0.0])
    np.testing.assert_allclose(f1, [0.8, 0.0])


def test_class_names_length_checked():
    with pytest.raises(ValueError, match="`class_names` must name each of the 3 classes"):
        metrics.classification_report(Y_TRUE, Y_PRED, class_names=["a", "b"], num_classes=3)


def test_length_mismatch():
    with pytest.raises(ValueError, match="one entry per example"):
        metrics.accuracy([0, 1], [0, 1, 1])


def test_agreement():
    teacher = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 2.0]])
    student = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 1.0], [0.0, 2.0]])
    assert metrics.agreement(teacher, student) == pytest.approx(0.75)


def test_expected_calibration_error_hand_values():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    labels = [0, 1, 1, 0]
    # 10 bins: each example alone in its bin -> mean |correct - confidence|
    assert metrics.expected_calibration_error(labels, probs, num_bins=10) == pytest.approx((0.1 + 0.6 + 0.3 + 0.8) / 4)
    # 2 bins: all in (0.5, 1]: |0.5 - 0.75|
    assert metrics.expected_calibration_error(labels, probs, num_bins=2) == pytest.approx(0.25)
    logits = np.log(probs)
    assert metrics.expected_calibration_error(labels, logits, num_bins=2, from_logits=True) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="`num_bins` must be >= 1. Received: num_bins=0"):
        metrics.expected_calibration_error(labels, probs, num_bins=0)


def test_size_on_disk(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 28)
    assert metrics.size_on_disk(tmp_path / "a.bin") == 100
    assert metrics.size_on_disk(tmp_path) == 128
    with pytest.raises(FileNotFoundError):
        metrics.size_on_disk(tmp_path / "missing")


def test_count_params_and_latency():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert metrics.count_params(model) == 15
    calls = []
    latency = metrics.latency_per_example(lambda x: calls.append(x), np.zeros((1, 4)), warmup=2, repeats=5)
    assert len(calls) == 7 and latency >= 0


def test_human_bytes():
    assert metrics.human_bytes(512) == "512 B"
    assert metrics.human_bytes(1536) == "1.5 KB"
    assert metrics.human_bytes(3 * 1024**2) == "3.0 MB"


def test_comparison_table_markdown_and_text():
    rows = [
        {"model": "teacher", "accuracy": 0.8412, "params": 1234567},
        {"model": "student", "accuracy": 0.8, "params": 98765, "size": "1.0 MB"},
    ]
    table = metrics.comparison_table(rows)
    lines = table.splitlines()
    assert lines[0].split("|")[1].strip() == "model"
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["model", "accuracy", "params", "size"]
    assert lines[1].startswith("| ---") and lines[1].rstrip("|").rstrip().endswith(":")
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["teacher", "0.841", "1,234,567", ""]
    assert [c.strip() for c in lines[3].strip("|").split("|")] == ["student", "0.800", "98,765", "1.0 MB"]
    text = metrics.comparison_table(rows, columns=["model", "params"], fmt="text")
    assert text.splitlines()[2].split() == ["teacher", "1,234,567"]
    with pytest.raises(ValueError, match="`fmt` must be 'markdown' or 'text'"):
        metrics.comparison_table(rows, fmt="html")
