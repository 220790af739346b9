import argparse

import numpy as np
import pytest
import tensorflow as tf

from keras_kd.cli import export as export_cli
from keras_kd.export.parity import TFLiteRunner


def run_export(argv):
    parser = argparse.ArgumentParser(prog="keras-kd")
    export_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def files(mnist_kd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    mnist_kd["student"].save(folder / "student.keras")
    np.save(folder / "x_train.npy", mnist_kd["x_train"][:256])
    np.save(folder / "x_test.npy", mnist_kd["x_test"][:200])
    np.save(folder / "y_test.npy", mnist_kd["y_test"][:200])
    return folder


def test_cli_exports_int8_tflite_and_checks_it(files, mnist_kd, capsys):
    code = run_export(
        [
            "--model", str(files / "student.keras"), "--format", "tflite", "--quantization", "int8",
            "--representative-data", str(files / "x_train.npy"), "--output", str(files / "out"),
            "--check", str(files / "x_test.npy"), "--labels", str(files / "y_test.npy"),
        ]
    )  # fmt: skip
    assert code == 0
    path = files / "out" / "student_int8.tflite"
    printed = capsys.readouterr().out
    assert f"Wrote {path}" in printed
    assert "| TFLite int8" in printed and "| Keras student" in printed
    logits, _ = TFLiteRunner(path).predict({"pixels": mnist_kd["x_test"][:200]})
    expected = mnist_kd["student"].predict(mnist_kd["x_test"][:200], verbose=0)
    assert np.mean(logits.argmax(-1) == expected.argmax(-1)) >= 0.98


def test_cli_exports_saved_model_with_class_names(files, mnist_kd):
    names = ",".join(f"d{i}" for i in range(10))
    output = files / "saved"
    assert (
        run_export(
            [
                "--model",
                str(files / "student.keras"),
                "--output",
                str(output),
                "--class-names",
                names,
            ]
        )
        == 0
    )
    outputs = tf.saved_model.load(str(output)).signatures["serving_default"](
        pixels=mnist_kd["x_test"][:5]
    )
    labels = mnist_kd["student"].predict(mnist_kd["x_test"][:5], verbose=0).argmax(-1)
    assert [name.decode() for name in outputs["label_names"].numpy()] == [f"d{i}" for i in labels]


def test_cli_is_registered_in_keras_kd_main(files):
    from keras_kd.cli.main import build_parser

    args = build_parser().parse_args(
        ["export", "--model", "m.keras", "--format", "tflite", "--output", "out"]
    )
    assert args.func is export_cli.run and args.quantization == "none"


def test_cli_errors(files, capsys):
    model = files / "student.keras"
    with pytest.raises(SystemExit, match="--quantization int8 needs --representative-data"):
        run_export(f"--model {model} --format tflite --quantization int8 --output {files}".split())
    with pytest.raises(SystemExit, match="--quantization applies to --format tflite only"):
        run_export(f"--model {model} --quantization dynamic --output {files / 'sm'}".split())
    with pytest.raises(SystemExit, match="no such file: missing.keras"):
        run_export(f"--model missing.keras --output {files / 'sm'}".split())
    with pytest.raises(SystemExit) as error:
        run_export(f"--model {model} --format tflite --quantization int4 --output {files}".split())
    assert error.value.code == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def test_cli_exports_only_the_student_of_a_saved_distiller(files, mnist_kd):
    mnist_kd["distiller"].save(files / "distiller.keras")
    run_export(
        [
            "--model",
            str(files / "distiller.keras"),
            "--format",
            "tflite",
            "--output",
            str(files / "d"),
        ]
    )
    run_export(
        [
            "--model",
            str(files / "student.keras"),
            "--format",
            "tflite",
            "--output",
            str(files / "s"),
        ]
    )
    from_distiller = (files / "d" / "distiller_float32.tflite").read_bytes()
    assert len(from_distiller) == len((files / "s" / "student_float32.tflite").read_bytes())
    assert b"teacher" not in from_distiller
