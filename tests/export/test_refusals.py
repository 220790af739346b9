"""Export refuses what it cannot do correctly, with a short error naming the argument or file."""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd import export
from keras_kd.export.tflite import float_weight_ops, tensor_types


def _sequential(classes=3):
    return keras.Sequential(
        [
            keras.Input((4, 4), name="pixels"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(classes),
        ],
        name="student",
    )


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(self.flatten(x))


@pytest.fixture(scope="module")
def student():
    return _sequential()


@pytest.fixture(scope="module")
def calibration():
    return np.random.default_rng(0).normal(size=(64, 4, 4)).astype("float32")


# ---------------------------------------------------------------- int8 representative data
@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda x: np.full_like(x, np.nan),
            r"`representative_data` for input 'pixels' holds 1024 NaN/Inf value\(s\) of 1024",
        ),
        (
            lambda x: x[:0],
            r"`representative_data` is empty: int8 calibration needs a few hundred training examples",
        ),
        (
            lambda x: x.reshape(64, 16),
            r"`representative_data` does not fit the model's input 'pixels': each example must have shape \(4, 4\) .* received examples of shape \(16,\) \(data of shape \(64, 16\)\)",
        ),
        (
            lambda x: x.astype(str),
            r"`representative_data` for input 'pixels' must be numeric \(float32\)",
        ),
    ],
    ids=["all_nan", "empty", "wrong_shape", "strings"],
)
def test_bad_representative_data_is_refused_before_conversion(
    student, calibration, tmp_path, make, match
):
    path = tmp_path / "student_int8.tflite"
    with pytest.raises(ValueError, match=match) as info:
        export.tflite(student, path, quantization="int8", representative_data=make(calibration))
    assert len(info.traceback) <= 4  # a short error, not the converter's traceback
    assert not path.exists()


def test_representative_dataset_of_the_wrong_shape(student, calibration, tmp_path):
    dataset = tf.data.Dataset.from_tensor_slices(calibration.reshape(64, 2, 8)).batch(16)
    with pytest.raises(
        ValueError,
        match=r"input 'pixels': each example must have shape \(4, 4\).*received examples of shape \(2, 8\)",
    ):
        export.tflite(
            student, tmp_path / "a.tflite", quantization="int8", representative_data=dataset
        )


def test_few_calibration_examples_warn(student, calibration, tmp_path):
    with pytest.warns(UserWarning, match=r"`representative_data` has only 4 example\(s\)"):
        export.tflite(
            student, tmp_path / "a.tflite", quantization="int8", representative_data=calibration[:4]
        )


def test_float_model_named_int8_is_never_written(student, calibration, tmp_path, monkeypatch):
    # Skip the data checks: the converter then calibrates on NaN and writes float kernels.
    tflite_module = sys.modules["keras_kd.export.tflite"]
    monkeypatch.setattr(
        tflite_module,
        "check_representative_data",
        lambda inputs, specs: len(next(iter(inputs.values()))),
    )
    path = tmp_path / "student_int8.tflite"
    with pytest.raises(
        ValueError,
        match=r"The converted model is not full-integer int8: \d+ weight op\(s\) compute in float .* It was not written",
    ):
        export.tflite(
            student,
            path,
            quantization="int8",
            representative_data=np.full_like(calibration, np.nan),
        )
    assert not path.exists()


def test_written_types_match_the_quantization(student, calibration, tmp_path):
    inner = {
        q: tensor_types(
            open(
                export.tflite(
                    student,
                    tmp_path / f"{q}.tflite",
                    quantization=q,
                    representative_data=calibration,
                ),
                "rb",
            ).read()
        )[0]
        for q in ("float16", "dynamic", "int8")
    }
    assert "float16" in inner["float16"]
    assert "int8" in inner["dynamic"]
    assert "int8" in inner["int8"]
    int8 = open(tmp_path / "int8.tflite", "rb").read()
    assert float_weight_ops(int8) == []
    assert [op for op, _ in float_weight_ops(open(tmp_path / "dynamic.tflite", "rb").read())] == [
        "FULLY_CONNECTED"
    ] * 2


# ---------------------------------------------------------------- class_names
@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_class_names_of_the_wrong_length_for_every_model_type(kind, tmp_path):
    if kind == "sequential":
        model = _sequential()
    elif kind == "functional":
        inputs = keras.Input((4, 4), name="pixels")
        model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    else:
        model = _Subclassed()
        model(np.zeros((1, 4, 4), "float32"))
    signature = (
        tf.TensorSpec([None, 4, 4], tf.float32, name="pixels") if kind == "subclassed" else None
    )
    with pytest.raises(
        ValueError,
        match=r"`class_names` must have one name per class \(3\)\. Received: class_names=\['a', 'b'\] \(2 names\)",
    ):
        export.saved_model(model, tmp_path / "sm", class_names=["a", "b"], signature=signature)
    assert not (tmp_path / "sm").exists()


def test_class_names_must_be_a_list(student, tmp_path):
    with pytest.raises(
        TypeError,
        match=r"`class_names` must be a list of names, one per class\. Received: class_names='abc'",
    ):
        export.saved_model(student, tmp_path / "sm", class_names="abc")


# ---------------------------------------------------------------- output folder
def test_non_empty_folder_is_refused_unless_overwrite(student, tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "stale.txt").write_text("from an earlier export")
    with pytest.raises(
        FileExistsError,
        match=rf"The export folder '{folder}' is not empty \(1 entries\).*Pass `overwrite=True`",
    ):
        export.saved_model(student, folder)
    assert (folder / "stale.txt").exists()
    export.saved_model(student, folder, overwrite=True)
    assert not (folder / "stale.txt").exists()
    assert os.path.exists(folder / "saved_model.pb")
    served = tf.saved_model.load(str(folder)).signatures["serving_default"]
    x = np.random.default_rng(1).normal(size=(2, 4, 4)).astype("float32")
    np.testing.assert_allclose(
        served(pixels=tf.constant(x))["logits"].numpy(), student(x).numpy(), atol=1e-5
    )


def test_file_path_is_refused_for_a_saved_model(student, tmp_path):
    path = tmp_path / "model.bin"
    path.write_text("x")
    with pytest.raises(
        FileExistsError,
        match=r"`path` must be a folder for the SavedModel, but '.*model\.bin' is a file",
    ):
        export.saved_model(student, path, overwrite=True)


# ---------------------------------------------------------------- variable-length inputs
def _token_student():
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    hidden = keras.layers.Embedding(100, 8, mask_zero=True)(ids)
    return keras.Model(
        ids, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(hidden)), name="tokens"
    )


def test_check_parity_on_a_variable_length_token_student(tmp_path):
    model = _token_student()
    path = export.tflite(model, tmp_path / "tokens.tflite")
    rng = np.random.default_rng(0)
    rows = [
        rng.integers(1, 100, size=(n,)).astype("int32") for n in (3, 9, 5, 12, 4, 7, 8, 6, 11, 2)
    ]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(rows), output_signature=tf.TensorSpec([None], tf.int32)
    ).padded_batch(4)
    result = export.check_parity(model, path, dataset)
    assert result["num_examples"] == 10
    assert result["agreement"] == 1.0
    assert result["max_abs_logit_diff"] < 1e-5
    fixed = export.check_parity(model, path, rng.integers(1, 100, size=(6, 7)).astype("int32"))
    assert fixed["num_examples"] == 6 and fixed["max_abs_logit_diff"] < 1e-5
