"""Online distillation overhead: keras-kd vs keras.distillation vs (teacher forward + student step).

MLP teacher 3x2048 -> MLP student 128 on 8192 x 256 random inputs, 10 classes, batch 256. All
variants run in this one process, interleaved round by round (so machine load affects them alike);
each epoch is timed with a callback and the median of the post-warm-up epochs is reported. The
lower bound of any online distiller is the teacher's forward pass plus the student's own training
step, measured separately. Writes its section of benchmarks/RESULTS.md.

    python benchmarks/online_overhead.py [--epochs 4] [--rounds 3]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402

import keras_kd  # noqa: E402

N, DIM, CLASSES, BATCH = 8192, 256, 10, 256


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def mlp(hidden, name):
    layers = [keras.Input((DIM,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(keras.layers.Dense(CLASSES))
    return keras.Sequential(layers, name=name)


def steady(times):
    """Median epoch time after the first (tracing) epoch."""
    return statistics.median(times[1:] if len(times) > 1 else times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; don't touch RESULTS.md")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, DIM)).astype("float32")
    y = rng.integers(0, CLASSES, size=(N,)).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).prefetch(tf.data.AUTOTUNE).cache()
    teacher = mlp([2048, 2048, 2048], "teacher")
    sce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def fit_epochs(model):
        timer = EpochTimer()
        model.fit(ds, epochs=args.epochs, verbose=0, callbacks=[timer])
        return steady(timer.times)

    def teacher_forward():
        forward = tf.function(lambda xb: teacher(xb, training=False))
        times = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            for xb, _ in ds:
                forward(xb).numpy()
            times.append(time.perf_counter() - start)
        return steady(times)

    def student_only():
        student = mlp([128], "student")
        student.compile(keras.optimizers.Adam(1e-3), sce)
        return fit_epochs(student)

    def keras_kd_online():
        distiller = keras_kd.Distiller(mlp([128], "student"), teacher, keras_kd.losses.KLDivergence(4.0), alpha=0.9)
        distiller.compile(keras.optimizers.Adam(1e-3))
        return fit_epochs(distiller)

    def keras_distillation():
        from keras.distillation import Distiller, LogitsDistillation

        distiller = Distiller(
            teacher=teacher,
            student=mlp([128], "student"),
            distillation_losses=LogitsDistillation(temperature=4.0),
            student_loss_weight=0.1,
        )
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=sce)
        return fit_epochs(distiller)

    variants = {
        "teacher forward": teacher_forward,
        "student train step": student_only,
        "keras-kd Distiller": keras_kd_online,
        "keras.distillation.Distiller": keras_distillation,
    }
    results = {name: [] for name in variants}
    for round_index in range(args.rounds):
        for name, run in variants.items():
            results[name].append(run())
            print(f"round {round_index + 1}: {name:30s} {results[name][-1] * 1000:8.1f} ms/epoch", flush=True)

    ms = {name: statistics.median(values) * 1000 for name, values in results.items()}
    bound = ms["teacher forward"] + ms["student train step"]
    rows = [
        ("teacher forward (alone)", ms["teacher forward"], None),
        ("student train step (alone, labels only)", ms["student train step"], None),
        ("**bound: teacher forward + student step**", bound, 1.0),
        ("keras-kd `Distiller` (online)", ms["keras-kd Distiller"], ms["keras-kd Distiller"] / bound),
        ("`keras.distillation.Distiller` (Keras 3.15)", ms["keras.distillation.Distiller"],
         ms["keras.distillation.Distiller"] / bound),
    ]
    table = "| variant | ms / epoch (median) | × bound |\n|---|---:|---:|\n" + "\n".join(
        f"| {name} | {value:.1f} | {'' if ratio is None else f'{ratio:.3f}'} |" for name, value, ratio in rows
    )
    text = (
        "## Online overhead (`benchmarks/online_overhead.py`)\n\n"
        f"MLP teacher 3×2048 → student 128, {N}×{DIM} random inputs, {CLASSES} classes, batch {BATCH}; "
        f"median of {args.rounds} rounds × {args.epochs - 1} steady epochs, variants interleaved in one process. "
        "Target: keras-kd ≤ 1.05 × (teacher forward + student step).\n\n"
        f"Command: `python benchmarks/online_overhead.py --epochs {args.epochs} --rounds {args.rounds}`\n\n" + table
    )
    print(text)
    if not args.no_write:
        _results.write_section("online_overhead", text)


if __name__ == "__main__":
    main()
