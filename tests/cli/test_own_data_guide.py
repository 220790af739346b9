"""docs/guides/own-data.md: the five-minute walkthrough, run exactly as written on a CSV this test writes."""

import pathlib
import re

from keras_kd.cli import main

GUIDE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "guides" / "own-data.md"


def _block(text, language):
    (block,) = re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)
    return block


def test_walkthrough_yaml_is_short_and_valid():
    import yaml

    from keras_kd.pipeline import parse_config

    block = _block(GUIDE.read_text(), "yaml")
    assert len(block.strip().splitlines()) <= 15
    config = parse_config(yaml.safe_load(block))
    assert config.data.source.format == "csv" and config.name == "my_reviews"


def test_own_csv_walkthrough(tmp_path, monkeypatch):
    text = GUIDE.read_text()
    monkeypatch.chdir(tmp_path)
    positive = ["great battery", "fast delivery", "works well", "love it", "very good", "excellent value"]
    negative = ["broke quickly", "too slow", "awful support", "hate it", "very bad", "waste of money"]
    rows = [(f"{t} {i}", "positive") for i in range(5) for t in positive]
    rows += [(f"{t} {i}", "negative") for i in range(5) for t in negative]
    rows += [("does what it says", "")]
    (tmp_path / "reviews.csv").write_text("text,label\n" + "\n".join(f"{t},{y}" for t, y in rows) + "\n")
    (tmp_path / "my_reviews.yaml").write_text(_block(text, "yaml"))
    command = _block(text, "bash").split()
    assert command[:2] == ["keras-kd", "distill"]
    assert main.main(command[1:]) == 0
    out = tmp_path / "saved_models" / "my_reviews"
    # every file the guide's table lists
    for name in ("report.md", "confusion_matrices.png", "student_savedmodel/saved_model.pb", "student_float.tflite",
                 "student_dynamic.tflite", "student.keras", "student_scratch.keras"):
        assert (out / name).is_file(), name
    assert list((tmp_path / "runs" / "my_reviews").rglob("events.out.tfevents.*"))
    report = (out / "report.md").read_text()
    assert "| teacher " in report and "| scratch student " in report and "| distilled student " in report
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)

    serve = tf.saved_model.load(str(out / "student_savedmodel")).signatures["serving_default"]
    names = serve(text=tf.constant(["great battery 9"]))["label_names"].numpy().astype(str)
    assert set(names) <= {"negative", "positive"}
