"""Size and latency: the one place keras-kd measures what a model costs.

Every table that shows a size or a latency (`keras-kd report`, `keras-kd demo`, `keras-kd distill`,
`keras_kd.export.check_parity` / `compare_exports`, the benchmarks) gets it from here, so two
tables never disagree on how a number was made.

    size_on_disk(path)                   bytes of a file, or of every file under a folder (SavedModel)
    weights_size(model)                  bytes of the model's `.weights.h5` file, without optimizer state
    latency_per_example(fn, example)     median seconds of `fn(example)` on one example (batch of 1)
    keras_latency(model, example)        the same for a compiled `model(x, training=False)` call
    median_ms(seconds)                   median of per-call timings, in milliseconds
    human_bytes(n)                       `1536` -> `'1.5 KB'`

Latencies are CPU wall times (`time.perf_counter`) after `warmup` untimed calls (tracing,
allocation); the median is reported because a shared machine produces occasional slow outliers.
"""

import os
import tempfile
import time

import numpy as np


def size_on_disk(path):
    """Bytes taken by a file, or by all files under a directory (a SavedModel)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return os.path.getsize(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No file or directory at {path!r}")
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def _raw_weight_bytes(model):
    return int(sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights))


def weights_size(model):
    """Bytes of the model's weights saved as a `.weights.h5` file, without optimizer state.

    A compiled model's `save_weights` also writes its optimizer's slots (which would triple the
    size of a trained model next to an untrained one), so a compiled model is measured through an
    uncompiled copy rebuilt from its config: same architecture, same file size. Layers that are
    not `keras.Model`s (teacher adapters) and models that cannot be rebuilt count the raw bytes of
    their weights.
    """
    import keras

    if not isinstance(model, keras.Model):
        return _raw_weight_bytes(model)
    if getattr(model, "optimizer", None) is not None:
        try:
            copy = type(model).from_config(model.get_config())
        except Exception:
            return _raw_weight_bytes(model)
        if len(copy.weights) != len(model.weights):  # e.g. a subclassed model not built by from_config
            return _raw_weight_bytes(model)
        model = copy
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.weights.h5")
        model.save_weights(path)
        return size_on_disk(path)


def latency_per_example(predict_fn, example, warmup=3, repeats=20):
    """Median CPU wall time (seconds) of `predict_fn(example)` on one example (batch of 1).

    `predict_fn` is any callable (a Keras model's `__call__`, a TFLite runner, ...); the first
    `warmup` calls (tracing, allocation) are not timed.
    """
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1. Received: repeats={repeats}")
    if warmup < 0:
        raise ValueError(f"`warmup` must be >= 0. Received: warmup={warmup}")
    for _ in range(warmup):
        predict_fn(example)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_fn(example)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def keras_latency(model, example, repeats=50, warmup=3):
    """Median seconds of one compiled (`tf.function`) batch-1 `model(x, training=False)` call.

    The outputs (a tensor or a dict/list of tensors) are read back to NumPy inside the timed call,
    so the figure includes getting the answer out, as a caller would.
    """
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False))

    def predict(x):
        return tf.nest.map_structure(np.asarray, call(x))

    return latency_per_example(predict, example, warmup=warmup, repeats=repeats)


def median_ms(seconds):
    """Median of per-call timings given in seconds, in milliseconds."""
    seconds = np.asarray(seconds, dtype=np.float64)
    if seconds.size == 0:
        raise ValueError("`seconds` is empty: there is no timing to summarize.")
    return float(np.median(seconds) * 1e3)


def human_bytes(num_bytes):
    """`1536` -> `'1.5 KB'` (powers of 1024)."""
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
