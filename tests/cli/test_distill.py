"""`keras-kd distill --config`: the user's own data end to end (CSV, TSV, JSONL, image folder, TFRecord),
teachers from `.keras` files and SavedModel folders, and one-line errors with non-zero exit codes."""

import json
import pathlib

import numpy as np
import pytest

from keras_kd.cli import main

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "configs"
TEXTS = {"pos": ["good great fine", "love it", "very nice", "great stuff", "so good", "fine fine"],
         "neg": ["bad awful", "hate it", "very poor", "awful stuff", "so bad", "poor poor"],
         "meh": ["okay i guess", "neutral", "so so", "average", "it is ok", "fair"]}
TEXT_STUDENT = "student: {builder: char_cnn, kwargs: {embed_dim: 4, filters: 4, kernel_sizes: [2], hidden: 0}}\n"
TEXT_DATA = "  tokenizer: char\n  vocabulary_size: 64\n  sequence_length: 16\n  validation_fraction: 0.0\n"
FAST = ("training: {epochs: 1, batch_size: 8, jit_compile: false, steps_per_epoch: 1}\nexport: {saved_model: true, tflite: [float]}\n"
        "baseline: {enabled: false}\n")


def _rows():
    return [(text, label) for label, texts in TEXTS.items() for text in texts]


def _text_teacher(path, saved_model=False):
    from keras_kd import models

    teacher = models.get_model("char_cnn", vocabulary_size=64, sequence_length=16, num_classes=3, embed_dim=8,
                               filters=8, kernel_sizes=(2,), hidden=0)
    if saved_model:
        teacher.export(str(path), verbose=False)
    else:
        teacher.save(str(path))
    return str(path)


def _run(tmp_path, config_text, *extra):
    config = tmp_path / "run.yaml"
    config.write_text(config_text)
    code = main.main(["distill", "--config", str(config), "--output-dir", str(tmp_path / "out"),
                      "--runs-dir", str(tmp_path / "runs"), *extra])
    return code, tmp_path / "out" / "run"


def _check_outputs(out, class_names, baseline=False):
    report = (out / "report.md").read_text()
    for text in ("| teacher ", "| distilled student ", "TFLite float") + (("| scratch student ",) if baseline else ()):
        assert text in report, text
    assert (out / "student_savedmodel" / "saved_model.pb").is_file()
    assert (out / "student_float.tflite").stat().st_size > 0
    import tensorflow as tf

    serve = tf.saved_model.load(str(out / "student_savedmodel")).signatures["serving_default"]
    assert "label_names" in serve.structured_outputs
    return serve, class_names


@pytest.mark.parametrize("fmt", ["csv", pytest.param("tsv", marks=pytest.mark.large),
                                 pytest.param("jsonl", marks=pytest.mark.large)])
def test_own_text_file_with_string_labels_end_to_end(tmp_path, fmt):
    path = tmp_path / f"train.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in _rows()) + "\n")
    else:
        sep = "," if fmt == "csv" else "\t"
        path.write_text("text" + sep + "label\n" + "\n".join(f"{t}{sep}{y}" for t, y in _rows()) + "\n")
    teacher = _text_teacher(tmp_path / "teacher.keras")
    code, out = _run(tmp_path, f"teacher: {{path: {teacher}}}\n{TEXT_STUDENT}"
                     f"data:\n  source: {{format: {fmt}, train: {path}, test_fraction: 0.25}}\n{TEXT_DATA}"
                     + (FAST.replace("enabled: false", "enabled: true") if fmt == "csv" else FAST))
    assert code == 0
    serve, _ = _check_outputs(out, None, baseline=fmt == "csv")
    import tensorflow as tf

    result = serve(text=tf.constant(["so good", "so bad"]))
    assert result["probabilities"].shape == (2, 3)
    assert set(result["label_names"].numpy().astype(str)) <= {"meh", "neg", "pos"}


def test_saved_model_teacher_and_unlabelled_rows(tmp_path):
    path = tmp_path / "train.csv"
    rows = _rows() + [("unlabelled one", ""), ("unlabelled two", "")]
    path.write_text("text,label\n" + "\n".join(f"{t},{y}" for t, y in rows) + "\n")
    teacher = _text_teacher(tmp_path / "teacher_savedmodel", saved_model=True)
    code, out = _run(tmp_path, f"teacher: {{path: {teacher}}}\n{TEXT_STUDENT}"
                     f"data:\n  source: {{format: csv, train: {path}, test_fraction: 0.25}}\n{TEXT_DATA}{FAST}")
    assert code == 0
    _check_outputs(out, None)
    # 18 labelled rows: 6 held out for test (stratified), 12 train + 2 unlabelled
    assert "14 transfer examples" in (out / "report.md").read_text()


def _image_folder(root):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for c, name in enumerate(("circle", "square", "triangle")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(rng.normal(60 * (c + 1), 10, (8, 8, 3)), 0, 255).astype("uint8")
            (root / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())


IMAGE_STUDENT = "student: {builder: image_cnn, kwargs: {filters: [2], hidden: 0}}\n"


def _image_teacher(path):
    from keras_kd import models

    models.get_model("image_cnn", input_shape=(8, 8, 3), num_classes=3, filters=(4,), hidden=8).save(str(path))
    return str(path)


def test_image_folder_with_three_classes_end_to_end(tmp_path):
    _image_folder(tmp_path / "images")
    teacher = _image_teacher(tmp_path / "teacher.keras")
    code, out = _run(tmp_path, f"teacher: {{path: {teacher}}}\n{IMAGE_STUDENT}"
                     f"data:\n  source: {{format: image_folder, train: {tmp_path / 'images'}, test_fraction: 0.34}}\n"
                     f"  validation_fraction: 0.0\n{FAST}")
    assert code == 0
    serve, _ = _check_outputs(out, None)
    result = serve(**{next(iter(serve.structured_input_signature[1])): np.zeros((1, 8, 8, 3), "float32")})
    assert set(result["label_names"].numpy().astype(str)) <= {"circle", "square", "triangle"}


@pytest.mark.large  # the reader is covered fast in tests/data/test_sources.py
def test_tfrecord_end_to_end(tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "train.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for text, label in _rows():
            feature = {"review": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
                       "stars": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    teacher = _text_teacher(tmp_path / "teacher.keras")
    code, out = _run(tmp_path, f"teacher: {{path: {teacher}}}\n{TEXT_STUDENT}"
                     f"data:\n  source: {{format: tfrecord, train: {path}, test_fraction: 0.25, text_column: review,\n"
                     f"           label_column: stars, features: {{review: string, stars: string}}}}\n"
                     f"{TEXT_DATA}{FAST}")
    assert code == 0
    _check_outputs(out, None)


# ---------------------------------------------------------------- user errors: one line, non-zero exit


def _error(tmp_path, capsys, config_text, *extra):
    code, _ = _run(tmp_path, config_text, *extra)
    err = capsys.readouterr().err.strip()
    return code, err


BASE = "teacher: {builder: char_cnn}\nstudent: {builder: char_cnn}\ndata: {dataset: chinese_reviews}\n"


@pytest.mark.parametrize("extra_yaml, message", [
    ("distillation: {temperature: .inf}\n", r"`distillation.temperature` must be a finite number > 0. "
                                             r"Received: distillation.temperature=inf"),
    ("distillation: {alpha: .nan}\n", r"`distillation.alpha` must be a finite number in \[0, 1\]"),
    ("distillation: {alpha: 2}\n", r"run.yaml: `distillation.alpha` must be a finite number in \[0, 1\]. "
                                   r"Received: distillation.alpha=2"),
    ("distillation: {loss: hidden_mse}\n", r"`distillation.loss` must be a registered logit loss name .*"
                                           r"'hidden_mse' is a feature loss: put it under "
                                           r"`distillation.feature_losses`"),
    ("distillation: {temperature_schedule: {values: [[0, 2.0], [5, .inf]]}}\n",
     r"`distillation.temperature_schedule.values\[1\]\[1\]` must be a finite number > 0"),
])
def test_config_errors_are_one_line_with_exit_code_2(tmp_path, capsys, extra_yaml, message):
    import re

    code, err = _error(tmp_path, capsys, BASE + extra_yaml)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("keras-kd distill: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_code_in_a_config_is_refused_before_import(tmp_path, capsys, monkeypatch):
    import sys

    marker = tmp_path / "evil_module_for_kd_test.py"
    marker.write_text("import pathlib\npathlib.Path(__file__).with_suffix('.ran').write_text('x')\n"
                      "def build(**kw):\n    raise SystemExit('should not run')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = BASE.replace("teacher: {builder: char_cnn}", "teacher: {builder: 'os:system', kwargs: {command: 'touch "
                          + str(tmp_path / "pwned") + "'}}")
    code, err = _error(tmp_path, capsys, config)
    assert code == 2 and "`teacher.builder` names code ('os:system')" in err and "--allow-code" in err
    assert not (tmp_path / "pwned").exists()
    config = BASE.replace("student: {builder: char_cnn}", "student: {builder: 'evil_module_for_kd_test:build'}")
    code, err = _error(tmp_path, capsys, config)
    assert code == 2 and "names code ('evil_module_for_kd_test:build')" in err
    assert "evil_module_for_kd_test" not in sys.modules and not marker.with_suffix(".ran").exists()


def test_missing_file_and_unknown_key_and_debug(tmp_path, capsys):
    code, err = _error(tmp_path, capsys, "teacher: {path: nowhere.keras}\nstudent: {builder: mlp}\n"
                       "data: {source: {format: csv, train: missing.csv}}\n")
    assert code == 2 and len(err.splitlines()) == 1
    assert "`train`: no such file or folder: 'missing.csv'" in err
    code, err = _error(tmp_path, capsys, BASE + "trainig: {epochs: 1}\n")
    assert code == 2 and "Unknown key `trainig` in the config" in err
    code, err = _error(tmp_path, capsys, BASE.replace("{builder: char_cnn}\nstudent", "{builder: char_cnn, kwargs: "
                                                      "{widht: 3}}\nstudent"))
    assert code == 2 and "`teacher.kwargs.widht` is not an argument of builder 'char_cnn'" in err
    (tmp_path / "run.yaml").write_text(BASE + "trainig: {epochs: 1}\n")
    with pytest.raises(ValueError, match="Unknown key `trainig`"):
        main.main(["distill", "--config", str(tmp_path / "run.yaml"), "--debug"])


def test_sha256_of_the_teacher_file_is_checked_before_loading(tmp_path, capsys):
    teacher = _text_teacher(tmp_path / "teacher.keras")
    code, err = _error(tmp_path, capsys, f"teacher: {{path: {teacher}, sha256: '{'0' * 64}'}}\n{TEXT_STUDENT}"
                       "data: {dataset: chinese_reviews}\n")
    assert code == 2 and "`teacher.sha256`: " in err and "the config expects 0000" in err


@pytest.mark.large
def test_example_configs_smoke(tmp_path):
    for name in ("demo", "fashion_mnist"):
        code = main.main(["distill", "--config", str(CONFIGS / f"{name}.yaml"), "--smoke",
                          "--output-dir", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs")])
        assert code == 0
