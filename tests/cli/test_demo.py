"""`keras-kd demo`: the bundled demo config through the one pipeline; `--quick` end to end (large)."""

import glob
import os

import pytest
from tensorboard.backend.event_processing import event_accumulator

from keras_kd.cli import main

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "configs", "demo.yaml")


def _calls(monkeypatch, argv):
    from keras_kd import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "run_config", lambda config, **kwargs: calls.append((config, kwargs)))
    assert main.main(argv) == 0
    return calls


def test_demo_is_the_bundled_config_run_like_distill(monkeypatch, tmp_path):
    """`keras-kd demo --quick` and `keras-kd distill --config examples/configs/demo.yaml --quick` run the same
    validated config (same seed, epochs, sizes) through the same function."""
    common = ["--quick", "--seed", "3", "--run-name", "x", "--output-dir", str(tmp_path), "--runs-dir", str(tmp_path)]
    (demo_config, demo_kwargs), = _calls(monkeypatch, ["demo", *common])
    (distill_config, distill_kwargs), = _calls(monkeypatch, ["distill", "--config", EXAMPLE, *common])
    assert demo_config.to_dict() == distill_config.to_dict()
    assert demo_config.seed == 3 and demo_config.training.epochs == 1 and demo_config.data.max_examples == 768
    assert demo_kwargs["output_dir"] == distill_kwargs["output_dir"] and not demo_kwargs["smoke"]
    (full, _), = _calls(monkeypatch, ["demo", "--run-name", "y"])
    bag, minilm = full.teachers
    assert full.seed == 0 and bag.train_epochs == 3 and bag.embedded and minilm.precomputed and minilm.sha256
    assert full.student.builder == "ngram_cnn" and full.student.kwargs["buckets"] == 32768
    assert full.student.kwargs["ngrams"] == [1, 2, 3]
    assert full.data.augment == {"level": "text", "copies": 8, "seed": 0, "delete_rate": 0.1, "num_swaps": 2,
                                 "ngram_rate": 0.25}  # fixed copies: every run seed finds the precomputed logits
    assert full.training.epochs == 3 and full.distillation.temperature == 1.0 and full.baseline.epochs == 10
    assert full.training.keep_best_epoch and full.baseline.data == "best"
    assert [t.to_dict().get("builder") for t in demo_config.teachers] == ["ngram_bag"]  # --quick: one small teacher


def test_demo_train_teacher_drops_embedded_from_every_teacher(monkeypatch):
    (config, _), = _calls(monkeypatch, ["demo", "--train-teacher", "--run-name", "z"])
    bag, minilm = config.teachers
    assert bag.embedded is None and bag.builder == "ngram_bag" and minilm.precomputed


@pytest.mark.large
def test_demo_and_distill_give_the_same_numbers(tmp_path):
    pytest.importorskip("snownlp")
    from keras_kd import pipeline

    kwargs = dict(quick=True, seed=0, output_dir=str(tmp_path / "o"), runs_dir=str(tmp_path / "r"), verbose=0)
    demo = pipeline.run(pipeline.bundled_config("demo"), run_name="a", **kwargs)
    distill = pipeline.run(EXAMPLE, run_name="b", **kwargs)
    for role in ("teacher", "scratch", "distilled"):
        assert demo.metrics[role]["accuracy"] == distill.metrics[role]["accuracy"], role
        assert demo.metrics[role]["macro F1"] == distill.metrics[role]["macro F1"], role


def _scalar_tags(directory):
    tags = set()
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        tags |= set(acc.Tags()["tensors"])
    return tags


@pytest.mark.large  # ~1-2 min on 2 busy cores; the fast tests below pin that demo == distill --config
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

    pytest.importorskip("snownlp")
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
