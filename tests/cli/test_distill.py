"""`keras-kd distill --config ... --smoke`: every runnable example config runs one step."""

import os
import pathlib

import pytest

from keras_kd.cli import config as config_lib
from keras_kd.cli import distill, main

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "configs"
# Configs `keras-kd distill` runs end to end; the multilingual ones drive example scripts that load their
# own data (parallel text) or a student trained by another example (test_config.py: they load and validate).
RUNNABLE = [
    "demo",
    "fashion_mnist",
    pytest.param("zh_sentiment", marks=pytest.mark.large),  # the demo config's path, with a bigger teacher
    pytest.param("en_sentiment_bert", marks=pytest.mark.large),  # loads the 22.7 M-parameter MiniLM
]


@pytest.mark.parametrize("name", RUNNABLE)
def test_example_config_runs_one_step(name, tmp_path):
    config = config_lib.load_config(CONFIGS / f"{name}.yaml")
    if config.data.dataset == "fashion_mnist" and not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Fashion-MNIST needs `apt-get install dataset-fashion-mnist`")
    if config.teacher.preset:
        pytest.importorskip(config.teacher.preset)
        pytest.importorskip("keras_hub")
    code = main.main(["distill", "--config", str(CONFIGS / f"{name}.yaml"), "--smoke",
                      "--output-dir", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs")])
    assert code == 0
    out = tmp_path / "out" / config.name
    assert (out / "report.md").is_file() and (out / "student.keras").is_file()
    assert (out / "student_savedmodel" / "saved_model.pb").is_file() == config.export.saved_model
    assert list((tmp_path / "runs" / config.name / "train").glob("events.out.tfevents.*"))


def test_bad_config_fails_with_the_message(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("teacher: {builder: char_cnn}\nstudent: {builder: char_cnn}\n"
                    "data: {dataset: chinese_reviews}\ndistillation: {alpha: 2}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: `distillation.alpha` must be a number in \[0, 1\]\. "
                                         r"Received: distillation.alpha=2"):
        main.main(["distill", "--config", str(path), "--smoke"])


def test_builder_resolution(tmp_path):
    assert distill.resolve_builder("mlp", "student") is distill.build_mlp
    with pytest.raises(ValueError, match=r"`student.builder`: cannot import module 'no_such_module'"):
        distill.resolve_builder("no_such_module:f", "student")
    with pytest.raises(ValueError, match=r"`student.builder`: 'os' has no function 'nope'"):
        distill.resolve_builder("os:nope", "student")


def test_builder_gets_the_data_arguments_it_accepts():
    import numpy as np

    data = distill.PreparedData(
        x_train=np.zeros((4, 28, 28, 1), "float32"), y_train=np.zeros(4, "int32"), x_val=None, y_val=None,
        x_test=None, y_test=None, class_names=list("abc"),
    )
    spec = config_lib.parse_config({"teacher": {"builder": "mlp", "kwargs": {"hidden": [8]}},
                                    "student": {"builder": "mlp"}, "data": {"dataset": "mnist_5k"}}).teacher
    model = distill.build_model(spec, "teacher", data)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 3)
    assert model.count_params() == 28 * 28 * 8 + 8 + 8 * 3 + 3


def test_augmentation_from_config():
    import numpy as np

    data = distill.PreparedData(
        x_train=np.array([[5, 6, 7, 8, 9, 0]], "int32"), y_train=np.array([1], "int32"), x_val=None, y_val=None,
        x_test=None, y_test=None, class_names=["n", "p"], tokenizer=object(),
    )
    augmentation, copies = distill.augmentation_from_config({"copies": 3, "delete_rate": 0.5, "num_swaps": 1}, data, 0)
    assert copies == 3 and augmentation.get_config()["delete_rate"] == 0.5
    assert distill.augmentation_from_config(None, data, 0) == (None, 0)
    with pytest.raises(ValueError, match=r"`data.augment.copies` must be an integer >= 1"):
        distill.augmentation_from_config({"copies": 0}, data, 0)
    images = distill.PreparedData(x_train=None, y_train=None, x_val=None, y_val=None, x_test=None, y_test=None,
                                  class_names=["a"])
    with pytest.raises(ValueError, match="`data.augment` applies to text datasets"):
        distill.augmentation_from_config({"copies": 1}, images, 0)
