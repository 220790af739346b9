"""`keras-kd demo --quick`: the user's first command, end to end on a small slice."""

import glob
import os

import pytest
from tensorboard.backend.event_processing import event_accumulator

from keras_kd.cli import main

pytest.importorskip("snownlp")


def _scalar_tags(directory):
    tags = set()
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        tags |= set(acc.Tags()["tensors"])
    return tags


def test_demo_quick_writes_models_report_plots_and_events(tmp_path, capsys):
    out, runs = tmp_path / "saved_models", tmp_path / "runs"
    code = main.main(["demo", "--quick", "--run-name", "t", "--output-dir", str(out), "--runs-dir", str(runs)])
    assert code == 0
    run_dir = out / "t"
    assert (run_dir / "student_savedmodel" / "saved_model.pb").is_file()
    for name in ("student_float.tflite", "student_dynamic.tflite", "student_int8.tflite", "report.md",
                 "confusion_matrices.png", "training_curves.png", "accuracy_vs_size.png", "teacher.keras",
                 "student.keras"):
        assert (run_dir / name).is_file(), name
        assert (run_dir / name).stat().st_size > 0, name
    report = (run_dir / "report.md").read_text()
    for text in ("| teacher ", "| scratch student ", "| distilled student ", "macro F1", "TFLite int8",
                 "![confusion matrices](confusion_matrices.png)"):
        assert text in report, text

    train_tags = _scalar_tags(str(runs / "t" / "distilled" / "train"))
    assert {"epoch_loss", "epoch_student_loss", "epoch_distillation_loss", "epoch_teacher_agreement",
            "epoch_accuracy", "epoch_temperature", "epoch_alpha", "teacher_val_accuracy", "config"} <= train_tags
    assert {"epoch_accuracy", "epoch_teacher_agreement"} <= _scalar_tags(str(runs / "t" / "distilled" / "validation"))
    assert "epoch_accuracy" in _scalar_tags(str(runs / "t" / "teacher" / "train"))
    assert "epoch_accuracy" in _scalar_tags(str(runs / "t" / "scratch" / "train"))

    printed = capsys.readouterr().out
    assert "distilled student" in printed and "Wall time:" in printed

    # the exported SavedModel serves raw text (the tokenizer is inside the graph)
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)

    serve = tf.saved_model.load(str(run_dir / "student_savedmodel")).signatures["serving_default"]
    result = serve(text=tf.constant(["这个酒店很好，服务周到", "质量太差了，非常失望"]))
    assert result["probabilities"].shape == (2, 2)
    np.testing.assert_allclose(result["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)
    assert set(result["label_names"].numpy().astype(str)) <= {"negative", "positive"}
