"""`keras_kd.teachers.precomputed`: a teacher given by its logits per text."""

import json

import numpy as np
import pytest

from keras_kd.teachers.precomputed import PrecomputedTeacher, save_precomputed_outputs, text_key


def test_rows_are_looked_up_by_text_and_duplicates_kept_once(tmp_path):
    path = str(tmp_path / "t.npz")
    texts = ["好", "不好", "好", "一般"]
    logits = np.array([[0.0, 2.0], [1.5, -1.0], [0.0, 2.0], [0.25, 0.5]], "float32")
    assert save_precomputed_outputs(path, texts, logits, params=1234, data_sha256="ab" * 32, command="make it") == 3
    teacher = PrecomputedTeacher.from_file(path, data_sha256="ab" * 32)
    assert teacher.num_rows == 3 and teacher.source_params == 1234 and teacher.card["command"] == "make it"
    rows = teacher.indices(["一般", "好", "不好", "好"])
    np.testing.assert_array_equal(teacher(rows)["logits"], logits[[3, 0, 1, 0]])
    assert not teacher.trainable and not teacher.trainable_weights
    assert len(text_key("好")) == 16 and text_key("好") != text_key("不好")


def test_missing_texts_other_splits_and_bad_files_are_refused(tmp_path):
    path = str(tmp_path / "t.npz")
    save_precomputed_outputs(path, ["a", "b"], np.zeros((2, 2)), data_sha256="ab" * 32, command="rebuild-me")
    teacher = PrecomputedTeacher.from_file(path)
    with pytest.raises(ValueError, match=r"no outputs for 2 of 3 texts \(first: 'c'\).*rebuild them: rebuild-me"):
        teacher.indices(["a", "c", "d"])
    np.testing.assert_array_equal(teacher.indices(["b", "c"], missing="uniform"), [1, 2])  # row 2: zeros
    np.testing.assert_array_equal(teacher(np.array([2]))["logits"], [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"`missing` must be 'error' or 'uniform'. Received: missing='skip'"):
        teacher.indices(["a"], missing="skip")
    with pytest.raises(ValueError, match=r"trained on another data split \(card data_sha256 abab.*this run's cdcd"):
        PrecomputedTeacher.from_file(path, data_sha256="cd" * 32)
    with pytest.raises(ValueError, match=r"Text 'a' appears twice with different logits"):
        save_precomputed_outputs(path, ["a", "a"], np.array([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"must be a \(len\(texts\), classes\) array. Received: shape \(3, 2\) for 2"):
        save_precomputed_outputs(path, ["a", "b"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="contain NaN or infinite values"):
        save_precomputed_outputs(path, ["a"], np.array([[np.nan, 0.0]]))
    np.savez(str(tmp_path / "other.npz"), logits=np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"is not a precomputed-outputs file \(no 'keys' array\)"):
        PrecomputedTeacher.from_file(str(tmp_path / "other.npz"))
    np.savez(str(tmp_path / "v0.npz"), keys=np.zeros((1, 16), "uint8"), logits=np.zeros((1, 2)),
             card=np.array(json.dumps({"format": "v0"})))
    with pytest.raises(ValueError, match=r"unknown format 'v0'"):
        PrecomputedTeacher.from_file(str(tmp_path / "v0.npz"))
