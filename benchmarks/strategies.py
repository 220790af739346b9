"""Distillation steps/s per tf.distribute strategy (default, Mirrored over 2 logical CPUs), XLA on/off.

MLP teacher 2x512 -> MLP student 128 on random inputs (128 features, 10 classes), global batch 256,
SGD. The four variants are built up front and timed round by round, interleaved (machine load hits
them alike); each round times one epoch of `--steps` steps after a warm-up epoch (tracing, XLA
compilation), and the median over rounds is reported. On a CPU-only machine "Mirrored" splits the
same cores into 2 replicas: it shows the cost of the distribution machinery (the all-reduce, the
per-replica steps), not a speed-up, which needs more devices. Writes its section of RESULTS.md.

    nice python benchmarks/strategies.py [--steps 40] [--rounds 3]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices for MirroredStrategy, configured before TensorFlow initializes.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402

from keras_kd import distribute  # noqa: E402

DIM, CLASSES, GLOBAL_BATCH = 128, 10, 256


def _mlp(widths, name):
    layers = [keras.Input((DIM,))] + [keras.layers.Dense(w, activation="relu") for w in widths]
    return keras.Sequential(layers + [keras.layers.Dense(CLASSES)], name=name)


def _variant(strategy_name, jit_compile):
    strategy = distribute.get_strategy(strategy_name)
    return strategy, distribute.distiller_in_scope(
        strategy,
        lambda: _mlp([128], "student"),
        lambda: _mlp([512, 512], "teacher"),
        distiller_kwargs={"alpha": 0.9},
        compile_kwargs={"optimizer": lambda: keras.optimizers.SGD(0.01), "jit_compile": jit_compile},
    )


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.steps * GLOBAL_BATCH, DIM)).astype("float32")
    y = rng.integers(0, CLASSES, size=(len(x),)).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).cache().prefetch(2)

    variants = {
        (name, jit): _variant(name, jit) for name in ("default", "mirrored") for jit in (False, True)
    }
    failures = {}
    for key, (_, distiller) in variants.items():  # warm-up: tracing and XLA compilation
        try:
            distiller.fit(dataset, epochs=1, verbose=0)
        except tf.errors.InvalidArgumentError as e:  # XLA + variables on several logical CPUs
            known = "located in device" in e.message  # tensorflow.org/xla/known_issues
            failures[key] = "XLA cannot read a variable placed on another logical CPU device" if known else e.message[:160]
    seconds = {key: [] for key in variants if key not in failures}
    for _ in range(args.rounds):
        for key in seconds:
            timer = _EpochTimer()
            variants[key][1].fit(dataset, epochs=1, verbose=0, callbacks=[timer])
            seconds[key].append(timer.seconds)

    rows = []
    base = args.steps / statistics.median(seconds[("default", False)])
    for (name, jit), (strategy, _) in variants.items():
        replicas = f"{strategy.num_replicas_in_sync} replica{'s' if strategy.num_replicas_in_sync > 1 else ''}"
        if (name, jit) in failures:
            rows.append(f"| {name} ({replicas}) | {'on' if jit else 'off'} | fails: {failures[(name, jit)]} | |")
        else:
            rate = args.steps / statistics.median(seconds[(name, jit)])
            rows.append(f"| {name} ({replicas}) | {'on' if jit else 'off'} | {rate:.1f} | {rate / base:.2f}x |")
        print(rows[-1], flush=True)
    markdown = "\n".join(
        [
            "## Steps/s per strategy, XLA on/off (`benchmarks/strategies.py`)",
            "",
            f"MLP teacher 2x512 -> student 128, {DIM} features, {CLASSES} classes, global batch {GLOBAL_BATCH}, SGD; "
            f"median of {args.rounds} interleaved rounds of {args.steps} steps after a warm-up epoch. "
            "Mirrored = `MirroredStrategy` over 2 logical CPU devices of the same cores (the cost of the "
            "distribution machinery, not a speed-up).",
            "",
            "| strategy | XLA (`jit_compile`) | steps/s | vs default, XLA off |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Command: `nice python benchmarks/strategies.py --steps {args.steps} --rounds {args.rounds}`.",
        ]
    )
    _results.write_section("strategies", markdown)


if __name__ == "__main__":
    main()
