"""Cost of the in-graph step checks (`Distiller(check_values=True)`, `keras_kd.checks`).

For each setup (MLP on MNIST-5k; a small CNN on the same digits) and each of `jit_compile=False`
/ `True`, two Distillers with identical models train side by side in this one process, one with the
checks and one without, alternating epoch by epoch (so machine load affects both alike). Each
epoch is timed with a callback; the fastest epoch after the first (tracing) one gives the step time
(the minimum is the estimate least disturbed by other processes on a shared machine; the median is
printed too), and the overhead is `checked / unchecked - 1`. The checked run includes the host-side
`StepCheck` callback (one scalar read per batch). Writes its section of benchmarks/RESULTS.md.

    python benchmarks/check_overhead.py [--rounds 12] [--no-write]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd import checks  # noqa: E402
from keras_kd.data.datasets import load_mnist_5k  # noqa: E402

BATCH = 128


class EpochTimer(keras.callbacks.Callback):
    """Wall time and this process's CPU time (all threads) of every epoch."""

    def __init__(self):
        super().__init__()
        self.times, self.cpu_times = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._start_cpu = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)
        self.cpu_times.append(time.process_time() - self._start_cpu)


def mlp(hidden, name):
    layers = [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Rescaling(1 / 255.0)]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    return keras.Sequential([*layers, keras.layers.Dense(10)], name=name)


def cnn(filters, name):
    layers = [
        keras.Input((28, 28)),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Rescaling(1 / 255.0),
    ]
    for units in filters:
        layers += [keras.layers.Conv2D(units, 3, activation="relu"), keras.layers.MaxPooling2D()]
    layers += [keras.layers.Flatten(), keras.layers.Dense(10)]
    return keras.Sequential(layers, name=name)


SETUPS = {
    "MLP 784-256-256-10 → 784-64-10": (
        lambda: mlp([256, 256], "teacher"),
        lambda: mlp([64], "student"),
    ),
    "CNN 32-64 → CNN 8-16": (lambda: cnn([32, 64], "teacher"), lambda: cnn([8, 16], "student")),
}


def distiller(make_teacher, make_student, check_values, jit_compile):
    keras.utils.set_random_seed(0)
    teacher, student = make_teacher(), make_student()
    model = keras_kd.Distiller(student=student, teacher=teacher, alpha=0.5)
    model.check_values = check_values
    model.compile(optimizer="adam", jit_compile=jit_compile)
    return model


def measure(setup, jit_compile, x, y, rounds):
    """`{checks on: (min, median, min CPU) ms per step}` over `rounds` alternating one-epoch fits."""
    make_teacher, make_student = SETUPS[setup]
    runs = {
        flag: distiller(make_teacher, make_student, flag, jit_compile) for flag in (True, False)
    }
    timers = {flag: EpochTimer() for flag in runs}
    for _ in range(rounds + 1):  # the first round traces
        for flag, model in runs.items():
            callbacks = [timers[flag]]
            if flag:  # what Distiller.fit adds (kept explicit so the cost is counted either way)
                callbacks = checks.prepare_fit(model, callbacks)
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
    steps = int(np.ceil(len(x) / BATCH))
    return {
        flag: (
            1e3 * min(timer.times[1:]) / steps,
            1e3 * statistics.median(timer.times[1:]) / steps,
            1e3 * min(timer.cpu_times[1:]) / steps,
        )
        for flag, timer in timers.items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument(
        "--no-write", action="store_true", help="print only; don't touch RESULTS.md"
    )
    args = parser.parse_args(argv)
    (x, y), _ = load_mnist_5k()
    x = x.astype("float32")
    start = time.perf_counter()
    rows = []
    for setup in SETUPS:
        for jit_compile in (False, True):
            times = measure(setup, jit_compile, x, y, args.rounds)
            (off, off_median, off_cpu), (on, on_median, on_cpu) = times[False], times[True]
            rows.append((setup, jit_compile, off, on, off_median, on_median, off_cpu, on_cpu))
            print(
                f"{setup} jit_compile={jit_compile}: min {off:.3f} -> {on:.3f} ms "
                f"({100 * (on / off - 1):+.1f} %), median {off_median:.3f} -> {on_median:.3f} ms, "
                f"CPU {off_cpu:.3f} -> {on_cpu:.3f} ms ({100 * (on_cpu / off_cpu - 1):+.1f} %)",
                flush=True,
            )
    lines = [
        "## Cost of the in-graph step checks (`benchmarks/check_overhead.py`)",
        "",
        f"MNIST-5k (4,000 train images), batch {BATCH}, Adam; per-step time = fastest epoch / steps "
        f"over {args.rounds} epochs per variant, the two variants alternating epoch by epoch (median "
        "in parentheses: other processes ran on the machine, so medians are noisy). "
        "`checks on` = `Distiller(check_values=True)` (the default) including the host-side `StepCheck` "
        "callback; `checks off` = `check_values=False`. CPU time: this process's (all threads), per step, "
        "fastest epoch: less disturbed by other processes than wall time.",
        "",
        "| setup | jit_compile | step, checks off | step, checks on | overhead | CPU/step off | CPU/step on | CPU overhead |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {setup} | {jit} | {off:.3f} ms ({off_m:.3f}) | {on:.3f} ms ({on_m:.3f}) | "
        f"{100 * (on / off - 1):+.1f} % | {off_c:.3f} ms | {on_c:.3f} ms | {100 * (on_c / off_c - 1):+.1f} % |"
        for setup, jit, off, on, off_m, on_m, off_c, on_c in rows
    ]
    lines += [
        "",
        f"`python benchmarks/check_overhead.py --rounds {args.rounds}` "
        f"({(time.perf_counter() - start) / 60:.1f} min).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        _results.write_section("check_overhead", text)


if __name__ == "__main__":
    main()
